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

    /// <summary><paramref name="text"/> cut to at most <paramref name="max"/> bytes of UTF-8, ending in "..." when cut (never inside a character).</summary>
    public static string Cut(string text, int max)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(text) <= max) return text;
        var bytes = 0;
        var end = 0;
        while (end < text.Length)
        {
            var step = char.IsHighSurrogate(text[end]) && end + 1 < text.Length ? 2 : 1;
            var size = System.Text.Encoding.UTF8.GetByteCount(text.AsSpan(end, step));
            if (bytes + size > max - 3) break;
            bytes += size;
            end += step;
        }
        return text[..end] + "...";
    }

    /// <summary>
    /// The fields a record shows only the length of: the commands a set runs (a password in a pg_dump line is common)
    /// and an applied file's text (which holds them). The trail is never trimmed, and its chain forbids taking one out.
    /// </summary>
    private static readonly HashSet<string> Masked = ["pre_command", "post_command", "on_success", "on_failure", "text"];

    /// <summary>A command as a record shows it: its JSON (the set commands and file texts masked), cut; whether anything was masked.</summary>
    public static string What(IMessage command, out bool masked)
    {
        var shown = command.Descriptor.Parser.ParseFrom(command.ToByteString());
        masked = Mask(shown);
        return Cut(JsonFormatter.Default.Format(shown), MaxWhat);
    }

    /// <summary>Replaces the <see cref="Masked"/> string fields of <paramref name="m"/> and the messages in it by "(masked: N characters)".</summary>
    private static bool Mask(IMessage m)
    {
        var masked = false;
        foreach (var field in m.Descriptor.Fields.InDeclarationOrder())
        {
            var value = field.Accessor.GetValue(m);
            switch (field.FieldType)
            {
                case Google.Protobuf.Reflection.FieldType.String when !field.IsRepeated && Masked.Contains(field.Name) && value is string { Length: > 0 } text:
                    field.Accessor.SetValue(m, $"(masked: {text.Length} characters)");
                    masked = true;
                    break;
                case Google.Protobuf.Reflection.FieldType.Message when field.IsRepeated && !field.IsMap:
                    foreach (var item in (System.Collections.IEnumerable)value)
                        if (item is IMessage inner) masked |= Mask(inner);
                    break;
                case Google.Protobuf.Reflection.FieldType.Message when !field.IsRepeated && value is IMessage one:
                    masked |= Mask(one);
                    break;
            }
        }
        return masked;
    }

    /// <summary>
    /// Whether a record keeps the signed command itself (its proof): an operator-only command's, or a taken restore's
    /// (data leaving); not a read of the trail (an auditor polling it would fill it), nor one whose commands were masked.
    /// </summary>
    public static bool KeepsProof(IMessage? command, bool masked, bool refused) =>
        command is not null && !masked && command is not ListAudit
        && (Protocol.Trust.OperatorCommands.OperatorOnly.Contains(command.Descriptor.Name) || (command is StartRestore && !refused));

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
    public sealed class Check(long seq = 0, ByteString? head = null)
    {
        public ByteString Head { get; private set; } = head ?? Genesis;
        public long Seq { get; private set; } = seq;
        public string Broken { get; private set; } = "";

        /// <summary>The first record read (0: none).</summary>
        public long From { get; private set; }

        public void Add(AuditRecord record)
        {
            if (From == 0) From = record.Seq;
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
