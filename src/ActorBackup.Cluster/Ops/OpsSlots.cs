using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// The operator endpoint's connections at once: <see cref="Total"/> in all, of which client hosts, integrators and
/// nodes together take at most <see cref="Total"/> - <see cref="ForOperators"/>, one client host's certificate at most
/// <see cref="PerCaller"/>, one integrator's <see cref="PerProgram"/> (a program may run many calls at once) and one
/// node's certificate one (it may ask nothing): a protected host's certificate (on any host) cannot lock the operators
/// out by holding every connection open.
/// </summary>
public sealed class OpsSlots
{
    public const int Total = 64, ForOperators = 16, PerCaller = 8, PerProgram = 32;
    private readonly Dictionary<string, int> _byCaller = [];
    private int _all, _others;

    /// <summary>Takes a slot for <paramref name="caller"/>; null when taken, else why not (said to the shell).</summary>
    public string? Take(CellIdentity caller)
    {
        var key = Key(caller);
        var operatorCall = caller.Role == CellRole.Operator;
        lock (_byCaller)
        {
            if (_all >= Total) return $"the node serves {Total} shell connections at once: try again when one closes";
            var mine = _byCaller.GetValueOrDefault(key);
            // A node's certificate may ask nothing here (each command is refused, saying which to use): one connection,
            // to hear that, not a program's share (two client hosts' node keys held every non-operator slot).
            var share = caller.Role switch { CellRole.Client => PerCaller, CellRole.Node => 1, _ => PerProgram };
            if (!operatorCall && mine >= share) return $"{caller} has {share} connection{(share == 1 ? "" : "s")} open to this node already: close one (a shell left running?) and try again";
            if (!operatorCall && _others >= Total - ForOperators)
                return $"the node keeps its last {ForOperators} shell connections for operators, and the others are taken: try again when one closes";
            _all++;
            if (!operatorCall) _others++;
            _byCaller[key] = mine + 1;
            return null;
        }
    }

    /// <summary>Gives back a slot <see cref="Take"/> gave <paramref name="caller"/>.</summary>
    public void Release(CellIdentity caller)
    {
        var key = Key(caller);
        lock (_byCaller)
        {
            _all--;
            if (caller.Role != CellRole.Operator) _others--;
            if (--_byCaller[key] == 0) _byCaller.Remove(key);
        }
    }

    private static string Key(CellIdentity caller) => $"{caller.Role}/{caller.Name}/{caller.Client}";
}
