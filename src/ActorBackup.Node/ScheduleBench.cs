using System.Diagnostics;
using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-schedule [--sets N]`: the manager's time for one schedule decision over N backup sets
/// (ManagerState.DecideDueSlots, plain code, no actors): a tick when nothing is due (every second, all day;
/// the first one after a set or its clock changed looks at every set, the others only at the earliest slot)
/// and a tick when every set is due at once (a midnight rush), median of 21 runs after a warm-up.
/// </summary>
public static class ScheduleBench
{
    public static int Run(int sets)
    {
        var now = DateTimeOffset.UtcNow;
        var rules = new[] { "0 2 * * *", "30 1 * * 1-5", "0 */4 * * *", "15 3 * * 0", "0 0 1 * *", "*/30 * * * *" };
        var state = new ManagerState().Apply(new ClientRegistered { Id = "client", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 4 });
        for (var i = 0; i < sets; i++)
        {
            var set = new BackupSetDefinition
            {
                Name = $"set{i}", Client = "client", Paths = { $"/data/{i}" }, Priority = 1 + i % 10, Policy = "default",
                Schedules = { new ScheduleRule { Cron = rules[i % rules.Length] } },
            };
            state = state.Apply(new BackupSetDefined { Set = set, UnixMs = now.AddDays(-2).ToUnixTimeMilliseconds() });
        }
        List<ManagerState.LibraryLoad> loads = [new("lib1", true, 0, 1UL << 40)];
        // Quiet: every set's clock at now, as after its last slot ran.
        var quiet = state;
        foreach (var name in state.BackupSets.Keys) quiet = quiet.Apply(new SlotMissed { Set = name, SlotUnixMs = now.ToUnixTimeMilliseconds() });
        double Median(Func<int> decide)
        {
            decide();
            var times = Enumerable.Range(0, 21).Select(_ =>
            {
                var clock = Stopwatch.StartNew();
                decide();
                return clock.Elapsed.TotalMilliseconds;
            }).Order().ToList();
            return times[times.Count / 2];
        }
        var idle = Median(() => quiet.DecideDueSlots(now.AddSeconds(1), loads).Count);
        // The first quiet tick after a set or a clock changed looks at every set again.
        var change = 0L;
        var changed = Median(() => quiet.Apply(new SlotMissed { Set = "set0", SlotUnixMs = now.ToUnixTimeMilliseconds() + ++change }).DecideDueSlots(now.AddSeconds(1), loads).Count);
        var rush = Median(() => state.DecideDueSlots(now, loads).Count);
        // The queue after the rush: every set's job waiting; the dispatch decision (also made each second) picks
        // what the library's 4 drives and the limits allow and says why each other job waits.
        var queued = state.DecideDueSlots(now, loads).SelectMany(d => d.Events).Aggregate(state, (st, e) => st.Apply(e));
        var dispatch = Median(() => queued.DecideDispatch(new QueueLimits(MaxJobsPerClient: 4), new Dictionary<string, StartingJob>(), null, now, loads).Start.Count);
        Console.WriteLine($"{sets} backup sets, {Environment.ProcessorCount} cores: a tick with nothing due {idle:F3} ms ({changed:F2} ms the first after a change); a tick with every set due {rush:F1} ms; " +
                          $"dispatch with {queued.Jobs.Count} jobs queued {dispatch:F1} ms");
        return 0;
    }
}
