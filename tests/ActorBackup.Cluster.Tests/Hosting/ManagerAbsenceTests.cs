using ActorBackup.Cluster.Hosting;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests.Hosting;

/// <summary>
/// A node left in a split cell (its manager's node, a lone first seed, started again and formed another) leaves after
/// the timeout once a seed outside its cell answers round after round; never while a manager is in the cell, and not
/// while the manager's node is merely down (nothing answers), so that its running jobs go on.
/// </summary>
public sealed class ManagerAbsenceTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch.AddYears(56);
    private static readonly UniqueAddress A = new(new Address("akka.ssl.tcp", "actorbackup", "10.0.0.11", 4053), 1),
        B = new(new Address("akka.ssl.tcp", "actorbackup", "10.0.0.12", 4053), 2);

    private static void Rounds(ManagerAbsence absence, bool answered)
    {
        for (var i = 0; i < ManagerAbsence.Rounds; i++) absence.RoundEnded(answered);
    }

    [Fact]
    public void A_member_whose_cell_lost_its_last_manager_leaves_once_a_seed_answers_from_outside_after_the_timeout()
    {
        var absence = new ManagerAbsence(TimeSpan.FromMinutes(2));
        absence.ManagerSeen(A);
        absence.ManagerSeen(B);
        absence.SelfUp(T0);
        Rounds(absence, true);
        Assert.False(absence.ShouldLeave(T0.AddHours(1))); // managers there
        absence.ManagerRemoved(A, T0.AddHours(1));
        Assert.False(absence.Absent(T0.AddHours(2))); // one left
        absence.ManagerRemoved(B, T0.AddHours(2));
        Assert.False(absence.Absent(T0.AddHours(2).AddMinutes(1)));
        Assert.True(absence.Absent(T0.AddHours(2).AddMinutes(2)));
        Rounds(absence, false); // the manager's node is down: nothing answers
        Assert.False(absence.ShouldLeave(T0.AddHours(3)));
        absence.RoundEnded(true);
        absence.RoundEnded(false); // not in a row
        Rounds(absence, true);
        Assert.True(absence.ShouldLeave(T0.AddHours(3)));
        absence.ManagerSeen(new UniqueAddress(A.Address, 3)); // back in time, in this cell
        Assert.False(absence.ShouldLeave(T0.AddHours(4)));
    }

    [Fact]
    public void An_old_incarnation_removed_after_the_new_one_came_up_does_not_count_the_manager_gone()
    {
        var absence = new ManagerAbsence(TimeSpan.FromMinutes(2));
        absence.SelfUp(T0);
        var again = new UniqueAddress(A.Address, 9);
        absence.ManagerSeen(again);
        absence.ManagerRemoved(A, T0); // the old one's removal, late
        Rounds(absence, true);
        Assert.False(absence.Absent(T0.AddHours(1)));
    }

    [Fact]
    public void A_node_not_yet_a_member_or_told_never_does_not_leave()
    {
        var joining = new ManagerAbsence(TimeSpan.FromMinutes(2));
        Rounds(joining, true);
        Assert.False(joining.Absent(T0.AddHours(1))); // not up: it is still joining through its seeds
        var never = new ManagerAbsence(TimeSpan.Zero);
        never.SelfUp(T0);
        Rounds(never, true);
        Assert.False(never.ShouldLeave(T0.AddDays(10)));
    }
}

/// <summary>
/// The actor on a member without the manager role, in a cell of its own with no manager, whose seed runs elsewhere: it
/// asks whether the manager runs at that seed (its singleton's instance there); where it does, it runs coordinated
/// shutdown with its reason; where it does not (a seed merely running), it stays.
/// </summary>
public sealed class ManagerAbsenceActorTests() : TestKit(ConfigurationFactory.ParseString(Remote + """
    akka.actor.provider = cluster
    akka.cluster.roles = [client]
    """))
{
    private const string Remote = """
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.loglevel = WARNING

        """;

    /// <summary>The singleton manager of a node and, when the manager runs there, its instance (/user/manager/manager).</summary>
    private sealed class Singleton : ReceiveActor
    {
        public Singleton(bool runs)
        {
            if (runs) Context.ActorOf(Props.Create(() => new Singleton(false)), "manager");
            ReceiveAny(_ => { });
        }
    }

    private async Task<bool> Leaves(bool seedRunsManager, TimeSpan within)
    {
        using var elsewhere = ActorSystem.Create(Sys.Name, ConfigurationFactory.ParseString(Remote + "akka.actor.provider = remote"));
        elsewhere.ActorOf(Props.Create(() => new Singleton(seedRunsManager)), "manager");
        var seed = ((ExtendedActorSystem)elsewhere).Provider.DefaultAddress;
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        Sys.ActorOf(ManagerAbsenceActor.Props(TimeSpan.FromSeconds(1), [seed, cluster.SelfAddress]));
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline && CoordinatedShutdown.Get(Sys).ShutdownReason is not ManagerAbsentReason) await Task.Delay(100);
        await elsewhere.Terminate();
        return CoordinatedShutdown.Get(Sys).ShutdownReason is ManagerAbsentReason;
    }

    [Fact]
    public async Task A_member_of_a_cell_without_a_manager_whose_seed_runs_the_manager_leaves_with_its_reason() =>
        Assert.True(await Leaves(seedRunsManager: true, TimeSpan.FromSeconds(60)));

    /// <summary>A seed that runs but not the manager (joining, or the manager's node down): the node stays, its jobs going on.</summary>
    [Fact]
    public async Task A_seed_that_runs_without_the_manager_does_not_make_it_leave() =>
        Assert.False(await Leaves(seedRunsManager: false, TimeSpan.FromSeconds(5)));
}
