using System.Security.Cryptography;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// A catalog rebuild's manifests too many for one message (Akka.Remote's 4 MiB frames: some thousands of manifests, fewer
/// of those listing many errors): the client node sends them in RecordSnapshotsPart messages of about 2 MiB under a random
/// token just before its RecordSnapshots, which names the token, how many parts and their digest. The manager puts them
/// together (<see cref="Take"/>) only for that request: the token, 128 random bits, travels only between the client node and
/// the manager (over the cell's TLS), and parts lost, out of order or not those sent fail the rebuild, which records
/// nothing (the operator runs it again). Parts wait 10 minutes at most; at most 256 MiB of them are held.
/// </summary>
public sealed class RebuildParts
{
    /// <summary>Manifest bytes in one part, and the most a request carries whole.</summary>
    public const int PartBytes = 2 << 20;

    /// <summary>The most bytes of parts held at once, all rebuilds together.</summary>
    public const long MaxHeld = 256L << 20;

    public static readonly TimeSpan WaitAtMost = TimeSpan.FromMinutes(10);

    private sealed class Waiting(int parts, long since)
    {
        public readonly RecordSnapshotsPart?[] Parts = new RecordSnapshotsPart?[parts];
        public readonly long Since = since;
        public long Bytes => Parts.Sum(p => p?.Manifests.Sum(m => (long)m.Length) ?? 0);
    }

    private readonly Dictionary<string, Waiting> _waiting = new(StringComparer.Ordinal);

    /// <summary>
    /// Moves <paramref name="request"/>'s manifests into parts when they pass <paramref name="partBytes"/> together; none
    /// (the request unchanged) when they fit.
    /// </summary>
    /// <exception cref="IOException">more manifest bytes than the manager holds for a rebuild (<see cref="MaxHeld"/>)</exception>
    public static IReadOnlyList<RecordSnapshotsPart> Split(RecordSnapshots request, int partBytes = PartBytes)
    {
        var total = request.Manifests.Sum(m => (long)m.Length);
        if (total <= partBytes) return [];
        if (total > MaxHeld)
            throw new IOException($"library {request.Library} holds {total >> 20} MiB of manifests, more than one rebuild hands the manager ({MaxHeld >> 20} MiB): " +
                                  "nothing was recorded; rebuild from another library that holds copies of its snapshots, or a build that hands more over");
        var parts = new List<RecordSnapshotsPart>();
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        RecordSnapshotsPart? part = null;
        long size = 0;
        foreach (var manifest in request.Manifests)
        {
            if (part is null || (size + manifest.Length > partBytes && part.Manifests.Count > 0))
            {
                parts.Add(part = new RecordSnapshotsPart { Library = request.Library, Token = token, Part = parts.Count });
                size = 0;
            }
            part.Manifests.Add(manifest);
            size += manifest.Length;
        }
        foreach (var p in parts) p.Parts = parts.Count;
        request.PartsToken = token;
        request.Parts = parts.Count;
        request.PartsDigest = Digest(request.Manifests);
        request.PartsComplete = request.Complete;
        request.Complete = false;
        request.Manifests.Clear();
        return parts;
    }

    /// <summary>SHA-256 of the manifests in order, each as its length (4 bytes) and its bytes.</summary>
    public static ByteString Digest(IEnumerable<ByteString> manifests)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var length = new byte[4];
        foreach (var m in manifests)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, m.Length);
            hash.AppendData(length);
            hash.AppendData(m.Span);
        }
        return ByteString.CopyFrom(hash.GetHashAndReset());
    }

    /// <summary>Holds a part until its request comes; one out of bounds, not matching the parts of its token, or past what may be held is dropped.</summary>
    /// <param name="now">a monotonic clock's milliseconds</param>
    /// <returns>why it was dropped, or null</returns>
    public string? Add(RecordSnapshotsPart part, long now)
    {
        DropStale(now);
        var bytes = part.Manifests.Sum(m => (long)m.Length);
        if (part.Token.Length is 0 or > 64 || part.Parts is < 1 or > (int)(MaxHeld / PartBytes) * 2 || part.Part < 0 || part.Part >= part.Parts || bytes > PartBytes * 2L)
            return $"a part {part.Part} of {part.Parts} of {bytes} bytes of a catalog rebuild is out of bounds";
        if (_waiting.TryGetValue(part.Token, out var waiting) && waiting.Parts.Length != part.Parts)
            return $"a part of catalog rebuild {part.Token} says {part.Parts} parts, not the {waiting.Parts.Length} of those waiting: dropped";
        if (_waiting.Values.Sum(w => w.Bytes) + bytes > MaxHeld)
            return $"parts of catalog rebuilds of more than {MaxHeld >> 20} MiB wait: part {part.Part} of rebuild {part.Token} dropped";
        if (waiting is null) _waiting[part.Token] = waiting = new Waiting(part.Parts, now);
        waiting.Parts[part.Part] = part;
        return null;
    }

    private void DropStale(long now)
    {
        foreach (var stale in _waiting.Where(w => now - w.Value.Since > (long)WaitAtMost.TotalMilliseconds).Select(w => w.Key).ToList()) _waiting.Remove(stale);
    }

    /// <summary>
    /// The manifests of <paramref name="request"/>'s parts, put together (and let go of); null with <paramref name="error"/>
    /// when a part is missing, of another library, or they do not hash to its digest.
    /// </summary>
    /// <param name="now">a monotonic clock's milliseconds: parts waiting longer than <see cref="WaitAtMost"/> (a rebuild whose request never came) go too</param>
    public List<ByteString>? Take(RecordSnapshots request, long now, out string error)
    {
        error = "";
        _waiting.Remove(request.PartsToken, out var waiting);
        DropStale(now);
        var missing = waiting is null || waiting.Parts.Length != request.Parts ? request.Parts : waiting.Parts.Count(p => p is null);
        if (missing > 0)
        {
            error = $"{missing} of the {request.Parts} parts of the manifests found in library {request.Library} did not reach the manager: nothing was recorded; run 'abk catalog rebuild {request.Library}' again";
            return null;
        }
        var manifests = waiting!.Parts.SelectMany(p => p!.Manifests).ToList();
        if (waiting.Parts.Any(p => p!.Library != request.Library) || !Digest(manifests).Equals(request.PartsDigest))
        {
            error = $"the parts of the manifests found in library {request.Library} that reached the manager are not those its rebuild sent: nothing was recorded; run 'abk catalog rebuild {request.Library}' again";
            return null;
        }
        return manifests;
    }
}
