using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Library;

/// <summary>A chunk another writer has been storing for too long (DiskLibrary.ReserveWaitLimit): a passing trouble, the job is tried again.</summary>
/// <summary>
/// A passing trouble of the library (a chunk another writer holds too long, its journal failed a moment ago): the job
/// fails and is tried again later. A source fault: a read it stops is not the chunk's damage.
/// </summary>
public sealed class LibraryBusyException(string message) : IOException(message), Codec.ISourceFault;

// Who stores a chunk that several writers want at once.
public sealed partial class DiskLibrary
{
    /// <summary>
    /// Claims the right to store <paramref name="id"/>: false when the library has it. When another writer is
    /// storing it right now, waits for that writer's <see cref="Append"/> (then false) or <see cref="Release"/>
    /// (then true): answering false at once would let this caller's snapshot name a chunk that a writer about
    /// to fail never stores. Whoever gets true must call <see cref="Append"/> or <see cref="Release"/>; a
    /// writer holds one reservation at a time, so waiters never wait on each other in a circle. A writer that holds
    /// one for longer than <see cref="ReserveWaitLimit"/> (stuck, or a peer that reserves and never appends) fails
    /// the waiter with a <see cref="LibraryBusyException"/> (its job is tried again later), not a wait without end.
    /// </summary>
    public bool TryReserve(ChunkId id)
    {
        lock (_lock)
        {
            var deadline = Environment.TickCount64 + (long)ReserveWaitLimit.TotalMilliseconds;
            while (true)
            {
                ThrowIfBroken(); // also when it broke while this caller waited
                if (_closed) throw new LibraryBusyException($"library {Id} was closed (its media agent opened it again) while this writer waited for chunk {id}: the job is tried again later");
                if (HasSound(id)) // one found damaged is stored again
                {
                    Touch(id); // the caller's snapshot will name it: a running prune keeps it
                    return false;
                }
                if (!_reserved.Contains(id)) CheckReserve(); // a new chunk: refused when the library is down to its reserve
                if (_reserved.Add(id)) return true;
                var left = deadline - Environment.TickCount64;
                if (left > 0) Monitor.Wait(_lock, TimeSpan.FromMilliseconds(left)); // then the loop looks again
                else throw new LibraryBusyException($"chunk {id} has been being stored by another writer for {ReserveWaitLimit.TotalSeconds:F0} s and still is not " +
                                                    "(a writer stuck, or gone without its connection closing): this attempt ends, and the backup is tried again later");
            }
        }
    }

    /// <summary>How long <see cref="TryReserve"/> waits for another writer's chunk (tests make it short).</summary>
    public TimeSpan ReserveWaitLimit { get; set; } = TimeSpan.FromMinutes(10);

    public void Release(ChunkId id)
    {
        lock (_lock)
        {
            if (_reserved.Remove(id)) Monitor.PulseAll(_lock);
        }
    }
}
