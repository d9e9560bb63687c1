using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.InteropServices.Marshalling;
using System.Text;

namespace ActorBackup.Engine.Posix;

/// <summary>
/// Linux names are byte strings; .NET's are UTF-16. A name's bytes become a string losslessly: valid UTF-8 as the
/// characters it encodes, every other byte b as the lone surrogate U+DC00+b (Python's "surrogateescape"), which no
/// valid UTF-8 can produce, so that the string turns back into exactly the bytes it came from (<see cref="Encode"/>).
/// Such a string is what the walk, the trees (Node.raw_name when it is not UTF-8), the restore and the globs work
/// with; <see cref="Display"/> is the one escape shown to people and in JSON.
/// </summary>
public static class PosixNames
{
    private const char EscapeBase = '\uDC00';

    /// <summary>
    /// A name, path or pattern as the glob library (DotNet.Glob) is to see it, pattern and subject alike: it reads a
    /// backslash as a folder separator, but a Linux name may hold one, so it sees U+DC5C in its place: the escape of
    /// byte 0x5C, which is never made (a backslash is valid UTF-8), so no name is mistaken for it.
    /// </summary>
    public static string ForGlob(string text) => text.Contains('\\') ? text.Replace('\\', '\uDC5C') : text;

    /// <summary>Whether <paramref name="name"/> holds escaped bytes (a name that is not valid UTF-8).</summary>
    public static bool HasEscapes(ReadOnlySpan<char> name)
    {
        for (var i = 0; i < name.Length; i++)
            if (IsEscape(name, i)) return true;
        return false;
    }

    /// <summary>
    /// Whether the character at <paramref name="i"/> is an escaped byte: a low surrogate U+DC80..U+DCFF on its own,
    /// not the second half of a pair (U+1F480, say, is the pair D83D DC80: a character, no escape).
    /// </summary>
    private static bool IsEscape(ReadOnlySpan<char> name, int i) =>
        name[i] is >= '\uDC80' and <= '\uDCFF' && (i == 0 || !char.IsHighSurrogate(name[i - 1]));

    /// <summary>The bytes <paramref name="name"/> stands for (valid UTF-8 for a name without escapes).</summary>
    public static byte[] Encode(string name)
    {
        if (!HasEscapes(name)) return Encoding.UTF8.GetBytes(name);
        var bytes = new List<byte>(name.Length + 8);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c is >= '\uDC80' and <= '\uDCFF')
            {
                bytes.Add((byte)(c - EscapeBase));
                continue;
            }
            var rune = char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]) ? new Rune(c, name[++i])
                : char.IsSurrogate(c) ? Rune.ReplacementChar // a lone surrogate that stands for no byte: not from a file system
                : new Rune(c);
            var n = rune.EncodeToUtf8(utf8);
            for (var k = 0; k < n; k++) bytes.Add(utf8[k]);
        }
        return bytes.ToArray();
    }

    /// <summary>The string for a name's bytes: every byte that is not part of valid UTF-8 escaped.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return Encoding.UTF8.GetString(bytes);
        var chars = new StringBuilder(bytes.Length);
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out var rune, out var consumed) == OperationStatus.Done)
                chars.Append(rune.ToString());
            else
            {
                consumed = 1; // each byte of an invalid sequence on its own, so that all of them come back
                chars.Append((char)(EscapeBase + bytes[0]));
            }
            bytes = bytes[consumed..];
        }
        return chars.ToString();
    }

    /// <summary>
    /// The name (or path, or pattern) that <paramref name="shown"/> shows (<see cref="Display"/>'s escapes read back:
    /// \xHH a byte, \\ a backslash; any other text as it is), as the engine works with it.
    /// </summary>
    public static string Parse(string shown)
    {
        if (!shown.Contains('\\')) return shown;
        var bytes = new List<byte>(shown.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < shown.Length; i++)
        {
            if (shown[i] == '\\' && i + 1 < shown.Length && shown[i + 1] == '\\')
            {
                bytes.Add((byte)'\\');
                i++;
                continue;
            }
            if (shown[i] == '\\' && i + 3 < shown.Length && shown[i + 1] == 'x' && IsHex(shown[i + 2]) && IsHex(shown[i + 3]))
            {
                bytes.Add(Convert.ToByte(shown.Substring(i + 2, 2), 16));
                i += 3;
                continue;
            }
            var rune = char.IsHighSurrogate(shown[i]) && i + 1 < shown.Length && char.IsLowSurrogate(shown[i + 1]) ? new Rune(shown[i], shown[++i])
                : char.IsSurrogate(shown[i]) ? Rune.ReplacementChar : new Rune(shown[i]);
            var n = rune.EncodeToUtf8(utf8);
            for (var k = 0; k < n; k++) bytes.Add(utf8[k]);
        }
        return Decode(bytes.ToArray());
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    /// <summary>
    /// How a name (or path) is shown, in listings and in JSON alike: a byte that is not valid UTF-8 as \xHH, a control
    /// character (a newline, a tab...) as \xHH, a C1 control character (U+0080-U+009F: CSI and the like, which a
    /// terminal may act on) as the \xc2\xHH of its two UTF-8 bytes, a backslash as \\; everything else as it is.
    /// </summary>
    public static string Display(string name)
    {
        var plain = true;
        for (var i = 0; i < name.Length && plain; i++)
            plain = !(name[i] < ' ' || name[i] is >= '\x7f' and <= '\x9f' || name[i] == '\\' || IsEscape(name, i));
        if (plain) return name;
        var shown = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c == '\\') shown.Append(@"\\");
            else if (IsEscape(name, i)) shown.Append($"\\x{c - EscapeBase:x2}");
            else if (c < ' ' || c == '\x7f') shown.Append($"\\x{(int)c:x2}");
            else if (c is >= '\x80' and <= '\x9f') shown.Append($"\\xc2\\x{(int)c:x2}");
            else shown.Append(c);
        }
        return shown.ToString();
    }
}

/// <summary>
/// Marshals a path for the POSIX calls as the bytes it stands for (<see cref="PosixNames.Encode"/>), NUL-terminated: in a
/// buffer on the caller's stack when it fits (a walk stats a million names: no array and no native block for each).
/// </summary>
[CustomMarshaller(typeof(string), MarshalMode.ManagedToUnmanagedIn, typeof(PosixNameMarshaller.ManagedToUnmanagedIn))]
public static unsafe class PosixNameMarshaller
{
    public ref struct ManagedToUnmanagedIn
    {
        /// <summary>Bytes given on the caller's stack: any name (255 bytes at most) and most paths fit, with the NUL.</summary>
        public static int BufferSize => 512;

        private byte* _native;
        private bool _allocated;

        public void FromManaged(string? managed, Span<byte> buffer)
        {
            if (managed is null)
            {
                _native = null;
                return;
            }
            // A name with escapes (bytes that are not UTF-8) goes the long way (PosixNames.Encode).
            if (!PosixNames.HasEscapes(managed) && System.Text.Encoding.UTF8.TryGetBytes(managed, buffer[..^1], out var n))
            {
                buffer[n] = 0;
                _native = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(buffer)); // the stub pins nothing: stack memory
                return;
            }
            var bytes = PosixNames.Encode(managed);
            _native = (byte*)NativeMemory.Alloc((nuint)bytes.Length + 1);
            _allocated = true;
            bytes.CopyTo(new Span<byte>(_native, bytes.Length));
            _native[bytes.Length] = 0;
        }

        public byte* ToUnmanaged() => _native;

        public void Free()
        {
            if (_allocated) NativeMemory.Free(_native);
        }
    }
}
