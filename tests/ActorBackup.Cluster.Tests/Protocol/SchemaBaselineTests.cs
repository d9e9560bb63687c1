using System.Runtime.CompilerServices;
using ActorBackup.Protocol;
using Google.Protobuf.Reflection;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// The protobuf schema against the one every build since the baseline has written (schema-baseline.txt beside this file):
/// the persisted events and snapshots are read by every later build, the messages between nodes are read by the build
/// before and after during an upgrade host by host, and the volumes' trees and manifests for years. So nothing there
/// is removed, renamed, renumbered or retyped, and a field added to a message takes a number above every field the
/// message had: a build that does not know it keeps it as an unknown field and writes it last, so a message re-written
/// to check its signature (SignedMessages, CallerSigned's signer, a manifest's seal) keeps the bytes that were signed.
/// A schema change that keeps to that adds lines: `ABK_SCHEMA_BASELINE=add dotnet test tests/ActorBackup.Cluster.Tests
/// --filter SchemaBaseline` appends them; a line that has to go is taken out by hand, in a commit that says why.
/// </summary>
public class SchemaBaselineTests
{
    private static string BaselinePath([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "schema-baseline.txt");

    /// <summary>One line per field and enum value: what a later build must still read the same way.</summary>
    internal static List<string> Lines()
    {
        var lines = new List<string>();
        void Message(MessageDescriptor m)
        {
            if (m.GetOptions()?.MapEntry == true) return;
            lines.Add($"message {m.FullName}"); // its name is its serializer manifest: a message with no field too
            foreach (var f in m.Fields.InFieldNumberOrder())
            {
                var kind = f.FieldType switch
                {
                    FieldType.Message or FieldType.Group => f.MessageType.FullName,
                    FieldType.Enum => f.EnumType.FullName,
                    _ => f.FieldType.ToString().ToLowerInvariant(),
                };
                if (f.IsMap) kind = $"map<{f.MessageType.FindFieldByNumber(1).FieldType.ToString().ToLowerInvariant()}, {Kind(f.MessageType.FindFieldByNumber(2))}>";
                var label = f.IsMap ? "" : f.IsRepeated ? "repeated " : f.HasPresence && f.FieldType != FieldType.Message ? "optional " : "";
                lines.Add($"message {m.FullName} {f.FieldNumber}: {label}{kind} {f.Name}");
            }
            foreach (var nested in m.NestedTypes) Message(nested);
            foreach (var e in m.EnumTypes) Enum(e);
        }
        void Enum(EnumDescriptor e)
        {
            lines.Add($"enum {e.FullName}");
            foreach (var v in e.Values) lines.Add($"enum {e.FullName} {v.Number}: {v.Name}");
        }
        foreach (var file in new[] { ProtocolReflection.Descriptor, OpsReflection.Descriptor, Engine.Trees.TreeReflection.Descriptor })
        {
            foreach (var m in file.MessageTypes) Message(m);
            foreach (var e in file.EnumTypes) Enum(e);
        }
        return lines;
    }

    private static string Kind(FieldDescriptor f) => f.FieldType switch
    {
        FieldType.Message => f.MessageType.FullName,
        FieldType.Enum => f.EnumType.FullName,
        _ => f.FieldType.ToString().ToLowerInvariant(),
    };

    /// <summary>"message X 12: ..." -> ("message X", 12); null for a line that is not a field's.</summary>
    private static (string Owner, int Number)? FieldOf(string line)
    {
        if (!line.StartsWith("message ", StringComparison.Ordinal)) return null;
        var parts = line.Split(' ', 4);
        if (parts.Length < 4) return null; // the message's own line
        return ($"{parts[0]} {parts[1]}", int.Parse(parts[2].TrimEnd(':'), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>What the schema <paramref name="now"/> does against <paramref name="baseline"/>: lines gone or changed, new fields numbered below their message's others, lines added.</summary>
    internal static (List<string> Gone, List<string> Misnumbered, List<string> Added) Check(IReadOnlyList<string> baseline, IReadOnlyList<string> now)
    {
        var current = now.ToHashSet(StringComparer.Ordinal);
        var gone = baseline.Where(l => !current.Contains(l)).ToList();
        var known = baseline.ToHashSet(StringComparer.Ordinal);
        var highest = baseline.Select(FieldOf).OfType<(string Owner, int Number)>().GroupBy(f => f.Owner).ToDictionary(g => g.Key, g => g.Max(f => f.Number));
        var added = now.Where(l => !known.Contains(l)).ToList();
        var misnumbered = added.Where(l => FieldOf(l) is { } f && highest.TryGetValue(f.Owner, out var max) && f.Number < max)
            .Select(l => $"{l} (highest {highest[FieldOf(l)!.Value.Owner]})").ToList();
        return (gone, misnumbered, added);
    }

    [Fact]
    public void The_schema_keeps_every_field_and_value_of_the_baseline_and_numbers_new_fields_after_them()
    {
        var baseline = File.ReadAllLines(BaselinePath()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var (gone, misnumbered, added) = Check(baseline, Lines());
        Assert.True(gone.Count == 0, "changed or removed since the baseline (never remove, rename, renumber or retype a field, a message or an " +
                                     "enum value older builds and stored data use: mark the number reserved and add a new field):\n" + string.Join("\n", gone));
        Assert.True(misnumbered.Count == 0, "a new field numbered below a field its message had (an older build would write it after them and " +
                                            "a signature over the message would no longer check): number it above the highest: " + string.Join("; ", misnumbered));
        if (added.Count == 0) return;
        if (Environment.GetEnvironmentVariable("ABK_SCHEMA_BASELINE") == "add")
        {
            File.AppendAllLines(BaselinePath(), added);
            return;
        }
        Assert.Fail($"{added.Count} fields, messages or values are not in the baseline yet: add them with ABK_SCHEMA_BASELINE=add dotnet test " +
                    "tests/ActorBackup.Cluster.Tests --filter SchemaBaseline (and commit schema-baseline.txt):\n" + string.Join("\n", added));
    }

    [Fact]
    public void The_check_sees_a_field_gone_retyped_or_numbered_below_the_others()
    {
        var lines = Lines();
        Assert.Contains("message actorbackup.protocol.StartBackup 2: repeated string paths", lines);
        Assert.Contains("message actorbackup.protocol.ListClients", lines); // a message with no field has its line
        Assert.Contains(lines, l => l.StartsWith("enum actorbackup.protocol.JobKind 2: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("message actorbackup.engine.Node ", StringComparison.Ordinal));
        Assert.Equal(lines.Count, lines.Distinct(StringComparer.Ordinal).Count());

        string[] baseline = ["message a.M", "message a.M 1: string x", "message a.M 5: int32 y", "enum a.E", "enum a.E 1: ONE"];
        var same = Check(baseline, baseline);
        Assert.True(same.Gone.Count + same.Misnumbered.Count + same.Added.Count == 0);
        // A field retyped, a message renamed, a value gone: each named.
        var (gone, _, _) = Check(baseline, ["message a.M", "message a.M 1: bytes x", "message a.N 5: int32 y", "enum a.E"]);
        Assert.Equal(["message a.M 1: string x", "message a.M 5: int32 y", "enum a.E 1: ONE"], gone);
        // A new field above the others is an addition; below them (in a gap), misnumbered; a new message any number.
        var (_, misnumbered, added) = Check(baseline, [.. baseline, "message a.M 6: bool z", "message a.M 3: bool w", "message a.P", "message a.P 1: bool v"]);
        Assert.Equal(["message a.M 3: bool w (highest 5)"], misnumbered);
        Assert.Equal(4, added.Count);
    }
}
