namespace ActorBackup.EndToEnd.Tests;

/// <summary>
/// A cell whose lone first seed, its only manager node, is stopped and started again: it forms a cell anew, without the
/// nodes that stayed up. They notice (no manager in their cell, the seed answering from outside it), leave and exit 75,
/// and started again (as systemd does) join the new cell.
/// </summary>
public class SplitCellTests
{
    [Fact]
    public void A_node_left_in_a_cell_without_its_manager_leaves_it_and_joins_the_cell_its_seed_formed_again()
    {
        using var dir = new TempDir();
        var nodeA = Path.Combine(dir.Path, "node-a");
        var nodeB = Path.Combine(dir.Path, "node-b");
        string[] clientArgs = ["--set", "actorbackup.roles=[client]", "--set", "actorbackup.client-id=host-b", "--set", "actorbackup.manager-absent-timeout=3s"];
        var a = new CellProcess(nodeA, null, "--set", "actorbackup.client-id=host-a").Start();
        var portA = a.Port;
        using var b = new CellProcess(nodeB, null, clientArgs) { JoinCellOf = a }.Start(seedPort: portA.ToString());
        try
        {
            Assert.Equal(0, a.Terminate()); // the manager's node leaves (a reboot) ...
        }
        finally
        {
            a.Dispose();
        }
        using var again = new CellProcess(nodeA, portA, "--set", "actorbackup.client-id=host-a").Start(); // ... and forms a cell anew
        var exit = b.ExitCodeWithin(TimeSpan.FromSeconds(120));
        Assert.True(exit == 75, $"the node left behind did not leave its cell (exit {exit?.ToString() ?? "none: still running"}):\n{b.Log}\nthe seed formed again:\n{again.Log}");
        Assert.Contains("no manager", b.Log);

        using var back = new CellProcess(nodeB, b.Port, clientArgs) { JoinCellOf = again }.Start(seedPort: portA.ToString());
        var deadline = DateTime.UtcNow.AddSeconds(60);
        // Known from the journal already: reachable once its node is a member of this cell again.
        while (!again.AbkJson("client", "list").GetProperty("clients").EnumerateArray()
                   .Any(c => c.GetProperty("id").GetString() == "host-b" && c.TryGetProperty("reachable", out var r) && r.GetBoolean()))
        {
            Assert.True(DateTime.UtcNow < deadline, "host-b never registered with the cell formed again:\n" + back.Log);
            Thread.Sleep(300);
        }
    }
}
