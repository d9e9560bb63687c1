using System.Buffers.Binary;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Protocol;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Media;

// Chunks found damaged where the index has them (Engine DiskLibrary.Damaged.cs): the library marks them as a read or a
// check finds them, this agent journals the marks (ChunksDamaged, kept in its snapshots), and gives them back to the
// library each time it opens it, so that a restart does not make writers take a damaged chunk for a sound one again.
public sealed partial class MediaActor
{
    /// <summary>The marks journaled (recovered, then as found): given to the library each time it is opened.</summary>
    private readonly Dictionary<ChunkId, ChunkLocation> _damagedMarks = [];

    private const int MarkSize = ChunkId.Size + 16;

    /// <summary>Marks in one event: some 2.4 MB.</summary>
    private const int MarksPerEvent = 50_000;

    public static ByteString PackMarks(IReadOnlyCollection<(ChunkId Id, ChunkLocation At)> marks)
    {
        var bytes = new byte[marks.Count * MarkSize];
        var o = 0;
        foreach (var (id, at) in marks)
        {
            id.WriteTo(bytes.AsSpan(o));
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(o + 32), at.Volume);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(o + 36), at.Offset);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(o + 44), at.Length);
            o += MarkSize;
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>The marks of <paramref name="packed"/>; a mark that does not make a place (damaged journal bytes) is passed over.</summary>
    public static IEnumerable<(ChunkId Id, ChunkLocation At)> UnpackMarks(ByteString packed)
    {
        for (var o = 0; o + MarkSize <= packed.Length; o += MarkSize)
        {
            var span = packed.Span.Slice(o, MarkSize);
            var (volume, offset, length) = (BinaryPrimitives.ReadUInt32LittleEndian(span[32..]), BinaryPrimitives.ReadInt64LittleEndian(span[36..]),
                BinaryPrimitives.ReadInt32LittleEndian(span[44..]));
            if (volume > ChunkLocation.MaxVolume || offset is < 0 or > ChunkLocation.MaxOffset || length < 0) continue;
            yield return (new ChunkId(span[..32]), new ChunkLocation(volume, offset, length));
        }
    }

    private void RecoverMarks(ByteString packed)
    {
        foreach (var (id, at) in UnpackMarks(packed)) _damagedMarks[id] = at;
    }

    /// <summary>
    /// Journals the marks the library made since the last look (health ticks; the reopen looks while it takes no writes;
    /// before the library is closed; never while its journal is held), and says what they mean.
    /// </summary>
    private void JournalDamaged()
    {
        if (_library?.TakeFoundDamaged() is not { Count: > 0 } found) return;
        _log.Warning("library {0}: {1} chunk{2} found damaged in volume{3} {4}: backups of hosts that still have their data store them again, and a heal or copy " +
                     "from another library mends them; until then restores of the snapshots that hold them use another copy, or fail on them " +
                     "('abk verify SNAPSHOT' names the files, and heals them from another library that holds the snapshot)",
            _declaration.Id, found.Count, found.Count == 1 ? "" : "s", found.Select(f => f.At.Volume).Distinct().Count() == 1 ? "" : "s",
            string.Join(", ", found.Select(f => f.At.Volume).Distinct().Order().Take(10)));
        // Known at once (a library opened again right after takes them), journaled in the background.
        foreach (var (id, at) in found) _damagedMarks[id] = at;
        PersistAll(found.Chunk(MarksPerEvent).Select(part => new ChunksDamaged { Marks = PackMarks(part) }), _ => _eventsSinceSnapshot++);
    }
}
