using ActorBackup.Engine.Tape;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorBackup.Cluster.Media;

// A tape library's changer, as an operator works it: inventory, import and export, labels, mounts, cleaning.
public sealed partial class MediaActor
{
    /// <summary>The tape library's medium (its changer) while the library is open; null for a disk library.</summary>
    private TapeMedium? _tape;

    private void TapeCommands()
    {
        Command<GetInventory>(_ =>
        {
            if (TapeRefusal() is { } refused) Sender.Tell(refused);
            else Sender.Tell(Inventory(_declaration.Id, _tape!.Changer, RunningJobOn));
        });
        Command<CleanDueDrives>(m =>
        {
            if (!FromManager(m)) return;
            CleanDue();
            Sender.Tell(Report());
        });
        Command<ChangeTape>(m =>
        {
            if (!FromManager(m)) return; // the manager checked that an operator asked, and that no job runs on the library
            if (TapeRefusal() is { } refused)
            {
                Sender.Tell(refused);
                return;
            }
            var robot = m.Verb is TapeVerb.Export or TapeVerb.Mount or TapeVerb.Unmount or TapeVerb.Clean;
            var busy = Busy() - BackgroundIndexSessions().Count; // those give way (below), once the command can be done
            if (robot && busy > 0)
            {
                // A job may be reading or writing any cartridge (a span, a restore's fallback, a copy): the robot waits.
                Sender.Tell(new CommandRejected { Reason = $"library {_declaration.Id} is in use by running jobs ({busy} session{(busy == 1 ? "" : "s")} or tasks): export, mount, unmount and clean when it is idle (abk drive list)" });
                return;
            }
            if (ToCommand(m) is not { } command)
            {
                Sender.Tell(new CommandRejected { Reason = $"unknown tape command {m.Verb}" });
                return;
            }
            var changer = _tape!.Changer;
            // A cartridge whose volume is still being written stays: backups would have nowhere to append.
            if (command is Engine.Tape.ExportCartridge export && changer.State.Cartridge(export.Barcode) is { Volume: > 0 } leaving && _library!.Appending(leaving.Volume))
            {
                Sender.Tell(new CommandRejected
                {
                    Reason = $"library {_declaration.Id}: cartridge {export.Barcode} holds volume {leaving.Volume}, which backups still append to: it stays in the library",
                });
                return;
            }
            if (robot && changer.State.Decide(command).Rejection is { } no)
            {
                Sender.Tell(new CommandRejected { Reason = $"library {_declaration.Id}: {no}" }); // the index reads on
                return;
            }
            if (robot) GiveWay($"an operator's {m.Verb}");
            if (changer.Execute(command) is { } why)
            {
                Sender.Tell(new CommandRejected { Reason = $"library {_declaration.Id}: {why}" });
                return;
            }
            _log.Info("library {0}: {1} done for an operator", _declaration.Id, command);
            Sender.Tell(Inventory(_declaration.Id, changer, RunningJobOn));
        });
    }

    /// <summary>Why the last automatic cleaning could not be done; null: none was refused.</summary>
    private string? _cleaningProblem;

    /// <summary>The drives due for cleaning (by the policy's counters, or because the drive asked).</summary>
    private IEnumerable<int> DrivesDueCleaning() =>
        _tape?.Changer.State is { } s ? s.Drives.Where(d => d.Failed == "" && s.CleaningDue(d) is not null).Select(d => d.Number) : [];

    /// <summary>
    /// The manager's cleaning at an idle moment: each due drive is unloaded and cleaned, unless a session is open
    /// (a job started meanwhile: the next idle moment does it).
    /// </summary>
    private void CleanDue()
    {
        // The background file index reads after backups give way (as to an operator's robot command): a library read so
        // after every backup would otherwise seldom be idle enough to be cleaned.
        if (_tape is null || Busy() - BackgroundIndexSessions().Count > 0 || !DrivesDueCleaning().Any()) return;
        GiveWay("a due cleaning");
        var changer = _tape.Changer;
        _cleaningProblem = null;
        foreach (var drive in DrivesDueCleaning().ToList())
        {
            var why = changer.State.CleaningDue(changer.State.Drives[drive - 1]);
            var refused = (changer.State.Drives[drive - 1].Cartridge != "" ? changer.Execute(new UnmountCartridge(drive)) : null) ?? changer.Execute(new CleanDrive(drive));
            if (refused is null) _log.Info("library {0}: drive {1} cleaned ({2})", _declaration.Id, drive, why);
            else
            {
                _cleaningProblem = $"drive {drive} is due for cleaning ({why}) but cannot be cleaned: {refused}";
                _log.Warning("library {0}: {1}", _declaration.Id, _cleaningProblem);
            }
        }
    }

    /// <summary>The sessions of backups' file indexes read in the background (ticket, job).</summary>
    private List<KeyValuePair<string, string>> BackgroundIndexSessions() => _sessions.Where(kv => Trust.JobTickets.IsBackgroundIndex(kv.Value)).ToList();

    /// <summary>
    /// A backup's file index, read in the background after it, gives way to an operator's robot command that nothing
    /// else holds up: its sessions end (its build stops with a warning, and abk find builds the index when it needs it),
    /// so that a library is not "in use" for minutes after every backup. A read of it already under way finishes.
    /// </summary>
    private void GiveWay(string to)
    {
        foreach (var (ticket, job) in BackgroundIndexSessions())
        {
            _log.Info("library {0}: the background file index of {1} gives way to {2}", _declaration.Id, job, to);
            CloseSession(ticket);
        }
    }

    /// <summary>What reads or writes the library now: its sessions, and the copies, prune and checks this agent runs itself.</summary>
    private int Busy() => _sessions.Count + _copies.Count + _checks.Count + (_prune is null ? 0 : 1);

    private CommandRejected? TapeRefusal() =>
        _declaration.Tape is null ? new CommandRejected { Reason = $"library {_declaration.Id} is a disk library: it has no cartridges or changer (abk volume list {_declaration.Id} shows its volumes)" }
        : _tape is null ? new CommandRejected { Reason = $"library {_declaration.Id} is not open: {_unavailable ?? "it is opening"}" }
        : null;

    public static ChangerCommand? ToCommand(ChangeTape m) => m.Verb switch
    {
        TapeVerb.Import => new ImportCartridge(m.Barcode),
        TapeVerb.Export => new ExportCartridge(m.Barcode),
        TapeVerb.Label => new LabelCartridge(m.Slot, m.Barcode),
        TapeVerb.Mount => new MountCartridge(m.Drive, m.Slot),
        TapeVerb.Unmount => new UnmountCartridge(m.Drive, m.Slot),
        TapeVerb.Clean => new CleanDrive(m.Drive),
        _ => null,
    };

    /// <summary>The job using a drive: the one that last mounted or used it, while it still has a session open here.</summary>
    private string RunningJobOn(int drive) => _tape?.JobOn(drive) is { Length: > 0 } job && _sessions.ContainsValue(job) ? job : "";

    /// <summary>The changer's cartridges and drives as abk library inventory shows them.</summary>
    public static LibraryInventory Inventory(string library, TapeChanger changer, Func<int, string>? jobOn = null)
    {
        var state = changer.State;
        var inventory = new LibraryInventory { Library = library, Slots = state.Config.Slots, SimulatedSeconds = changer.SimulatedSeconds };
        inventory.Cartridges.AddRange(state.Cartridges.Values.OrderBy(c => c.Place.Kind).ThenBy(c => c.Place.Number).ThenBy(c => c.Barcode, StringComparer.Ordinal).Select(c => new InventoryCartridge
        {
            Barcode = c.Barcode, Kind = c.Kind.ToString().ToLowerInvariant(), Place = c.Place.Kind.ToString().ToLowerInvariant(), Number = c.Place.Number,
            Label = c.Label, Volume = c.Volume, Uses = c.Uses, Worn = state.Worn(c), Retired = c.Retired, Files = c.Marks?.Count ?? 0,
        }));
        inventory.Drives.AddRange(state.Drives.Select(d => new TapeDriveState
        {
            Number = d.Number, Cartridge = d.Cartridge, Mounts = d.Mounts, Hours = d.UsedSeconds / 3600, MountsSinceCleaning = d.MountsSinceCleaning,
            HoursSinceCleaning = d.UsedSecondsSinceCleaning / 3600, CleaningDue = state.CleaningDue(d) ?? "", Cleanings = d.Cleanings, Failed = d.Failed,
            LastCleanedUnixMs = d.LastCleanedUnixMs, Job = d.Cartridge != "" ? jobOn?.Invoke(d.Number) ?? "" : "",
            Activity = changer.Activity(d.Number),
        }));
        return inventory;
    }
}
