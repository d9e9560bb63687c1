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
            else Sender.Tell(Inventory(_declaration.Id, _tape!.Changer));
        });
        Command<ChangeTape>(m =>
        {
            if (!FromManager(m)) return; // the manager checked that an operator asked, and that no job runs on the library
            if (TapeRefusal() is { } refused)
            {
                Sender.Tell(refused);
                return;
            }
            if (ToCommand(m) is not { } command)
            {
                Sender.Tell(new CommandRejected { Reason = $"unknown tape command {m.Verb}" });
                return;
            }
            var changer = _tape!.Changer;
            if (changer.Execute(command) is { } why)
            {
                Sender.Tell(new CommandRejected { Reason = $"library {_declaration.Id}: {why}" });
                return;
            }
            _log.Info("library {0}: {1} done for an operator", _declaration.Id, command);
            Sender.Tell(Inventory(_declaration.Id, changer));
        });
    }

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

    /// <summary>The changer's cartridges and drives as abk library inventory shows them.</summary>
    public static LibraryInventory Inventory(string library, TapeChanger changer)
    {
        var state = changer.State;
        var inventory = new LibraryInventory { Library = library, Slots = state.Config.Slots, SimulatedSeconds = changer.SimulatedSeconds };
        inventory.Cartridges.AddRange(state.Cartridges.Values.OrderBy(c => c.Place.Kind).ThenBy(c => c.Place.Number).ThenBy(c => c.Barcode, StringComparer.Ordinal).Select(c => new InventoryCartridge
        {
            Barcode = c.Barcode, Kind = c.Kind.ToString().ToLowerInvariant(), Place = c.Place.Kind.ToString().ToLowerInvariant(), Number = c.Place.Number,
            Label = c.Label, Volume = c.Volume, Uses = c.Uses, Worn = state.Worn(c),
        }));
        inventory.Drives.AddRange(state.Drives.Select(d => new TapeDriveState
        {
            Number = d.Number, Cartridge = d.Cartridge, Mounts = d.Mounts, Hours = d.UsedSeconds / 3600, MountsSinceCleaning = d.MountsSinceCleaning,
            HoursSinceCleaning = d.UsedSecondsSinceCleaning / 3600, CleaningDue = state.CleaningDue(d) ?? "", Cleanings = d.Cleanings, Failed = d.Failed,
        }));
        return inventory;
    }
}
