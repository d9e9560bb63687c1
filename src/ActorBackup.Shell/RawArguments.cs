using System.Text;

namespace ActorBackup.Shell;

/// <summary>
/// abk's arguments as the kernel gave them (/proc/self/cmdline): .NET decodes argv as UTF-8 and makes each byte that is
/// not UTF-8 a U+FFFD, so a name typed or pasted by its raw bytes (tab completion of `caf\xe9`) would reach the node as
/// another name. Such an argument is refused with the form abk takes for it (`\xHH`, as `abk ls` shows names).
/// </summary>
public static class RawArguments
{
    /// <summary>How to write a name that is not UTF-8 to abk (its arguments, its prompt).</summary>
    public const string HowToWrite = "write each byte of a name that is not UTF-8 as \\xHH, as abk ls shows names, and a backslash as \\\\";

    /// <summary>Why an argument cannot be taken as given (it is not UTF-8, and how to write it); null when each is UTF-8.</summary>
    public static string? NotUtf8(byte[]? cmdline = null)
    {
        try
        {
            cmdline ??= File.ReadAllBytes("/proc/self/cmdline");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // no /proc: the arguments as .NET decoded them
        }
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var args = cmdline.AsSpan().TrimEnd((byte)0);
        var first = true;
        foreach (var range in args.Split((byte)0))
        {
            var arg = args[range];
            if (first)
            {
                first = false; // the program's own path
                continue;
            }
            try
            {
                strict.GetCharCount(arg);
            }
            catch (DecoderFallbackException)
            {
                var escaped = Escaped(arg);
                return $"argument '{escaped}' is not UTF-8 ('{escaped}' is how abk takes it): {HowToWrite} (a file abk itself reads, " +
                       "apply's or --certs', needs a UTF-8 name)";
            }
        }
        return null;
    }

    /// <summary>The bytes as abk takes them: UTF-8 as it is, every other byte \xHH, a backslash \\.</summary>
    public static string Escaped(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder();
        while (!bytes.IsEmpty)
        {
            if (System.Text.Rune.DecodeFromUtf8(bytes, out var rune, out var used) == System.Buffers.OperationStatus.Done)
            {
                if (rune.Value == '\\') sb.Append(@"\\");
                else sb.Append(rune.ToString());
            }
            else
            {
                used = Math.Max(1, used);
                for (var i = 0; i < used; i++) sb.Append($"\\x{bytes[i]:x2}");
            }
            bytes = bytes[used..];
        }
        return sb.ToString();
    }
}
