using System.Security.Cryptography;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Audit;

/// <summary>
/// The audit trail's rules, without actors: how a record is chained to the one before it, how a trail read from its
/// start is checked, what a record keeps of a command (bounded), and which records a ListAudit takes.
/// </summary>
public static class AuditTrail
{
    /// <summary>The hash before the first record.</summary>
    public static readonly ByteString Genesis = ByteString.CopyFrom(new byte[32]);

    public const int MaxWhat = 2048;
    public const int MaxOutcome = 512;
    public const int MaxName = 128;
    public const int MaxSigned = 64 * 1024;
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;

    /// <summary>SHA-256 of <paramref name="previous"/> and <paramref name="record"/>'s bytes with its hash empty.</summary>
    public static ByteString Hash(ByteString previous, AuditRecord record)
    {
        var bare = record.Clone();
        bare.Hash = ByteString.Empty;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(previous.Span);
        sha.AppendData(bare.ToByteArray());
        return ByteString.CopyFrom(sha.GetHashAndReset());
    }

    /// <summary><paramref name="text"/> cut at <paramref name="max"/> characters, ending in "..." when cut.</summary>
    public static string Cut(string text, int max) => text.Length <= max ? text : text[..(max - 3)] + "...";

    /// <summary>A command as a record shows it: its JSON, cut.</summary>
    public static string What(IMessage command)
    {
        var json = JsonFormatter.Default.Format(command);
        return Cut(json, MaxWhat);
    }

    /// <summary>Whether <paramref name="record"/> is one <paramref name="query"/> asks for.</summary>
    public static bool Matches(AuditRecord record, ListAudit query) =>
        record.UnixMs >= query.SinceUnixMs
        && (query.Caller == "" || record.Caller.Contains(query.Caller, StringComparison.OrdinalIgnoreCase))
        && (query.Command == "" || string.Equals(record.Command, query.Command, StringComparison.OrdinalIgnoreCase));

    /// <summary>How many records a ListAudit gets: its limit, else 100; at most 500 (an answer within the 4 MiB frame).</summary>
    public static int Limit(ListAudit query) => query.Limit <= 0 ? DefaultLimit : Math.Min(query.Limit, MaxLimit);

    /// <summary>
    /// A trail read from its first record, checked as it goes: each record's seq one more than the last, and its hash
    /// that of the record and the hash before it. <see cref="Broken"/> says where the first break is.
    /// </summary>
    public sealed class Check
    {
        public ByteString Head { get; private set; } = Genesis;
        public long Seq { get; private set; }
        public string Broken { get; private set; } = "";

        public void Add(AuditRecord record)
        {
            if (Broken == "")
            {
                if (record.Seq != Seq + 1)
                    Broken = Seq == 0 && record.Seq > 1
                        ? $"the trail starts at record {record.Seq}, not 1: records 1 to {record.Seq - 1} are gone"
                        : $"record {record.Seq} follows record {Seq}: {(record.Seq > Seq ? $"records {Seq + 1} to {record.Seq - 1} are gone" : "a record is there twice")}";
                else if (!Hash(Head, record).Equals(record.Hash))
                    Broken = $"record {record.Seq} ({Output(record)}) is not the record chained there: it, or one before it, was changed";
            }
            Seq = record.Seq;
            Head = record.Hash;
        }

        private static string Output(AuditRecord r) =>
            $"{DateTimeOffset.FromUnixTimeMilliseconds(r.UnixMs):yyyy-MM-dd HH:mm:ss}Z, {r.Command} by {(r.Caller == "" ? "nobody of the cell" : r.Caller)}";
    }
}
