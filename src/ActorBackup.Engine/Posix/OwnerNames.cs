using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace ActorBackup.Engine.Posix;

/// <summary>
/// User and group names of owner ids, and ids of names, as this host's user database says (getpwuid_r and friends:
/// /etc/passwd, LDAP, whatever NSS is set up with), each looked up once. A backup records the names beside the ids;
/// a restore onto another host gives each file the id its owner's name has there (<see cref="Resolve"/>), as tar
/// does, unless told to keep the numbers.
/// </summary>
public sealed unsafe partial class OwnerNames
{
    private readonly ConcurrentDictionary<uint, string> _users = new(), _groups = new();
    private readonly ConcurrentDictionary<string, uint?> _userIds = new(StringComparer.Ordinal), _groupIds = new(StringComparer.Ordinal);

    /// <summary>The name of user <paramref name="uid"/> here; "" when it has none.</summary>
    public string User(uint uid) => _users.GetOrAdd(uid, static id => Lookup(id, user: true));

    /// <summary>The name of group <paramref name="gid"/> here; "" when it has none.</summary>
    public string Group(uint gid) => _groups.GetOrAdd(gid, static id => Lookup(id, user: false));

    public uint? UserId(string name) => name == "" ? null : _userIds.GetOrAdd(name, static n => Lookup(n, user: true));

    public uint? GroupId(string name) => name == "" ? null : _groupIds.GetOrAdd(name, static n => Lookup(n, user: false));

    /// <summary>
    /// The id to give a restored file: the recorded one when <paramref name="numeric"/>, or when the recorded name is
    /// empty or unknown here; otherwise the id that name has here.
    /// </summary>
    public static uint Resolve(uint recorded, string name, bool numeric, Func<string, uint?> here) =>
        numeric || name == "" ? recorded : here(name) ?? recorded;

    // struct passwd { char *pw_name; char *pw_passwd; uid_t pw_uid; gid_t pw_gid; ... }, struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }:
    // the name, then after two pointers the id; the buffer the strings live in is ours.
    [StructLayout(LayoutKind.Sequential)]
    private struct Entry { public byte* Name; public byte* Password; public uint Id; public uint Gid; public nint Rest0, Rest1, Rest2; }

    [LibraryImport("libc")] private static partial int getpwuid_r(uint uid, Entry* entry, byte* buffer, nuint size, Entry** result);
    [LibraryImport("libc")] private static partial int getgrgid_r(uint gid, Entry* entry, byte* buffer, nuint size, Entry** result);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)] private static partial int getpwnam_r(string name, Entry* entry, byte* buffer, nuint size, Entry** result);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)] private static partial int getgrnam_r(string name, Entry* entry, byte* buffer, nuint size, Entry** result);

    private const int ERANGE = 34, MaxBuffer = 1 << 20;

    private delegate int Call(Entry* entry, byte* buffer, nuint size, Entry** result);

    private static string Lookup(uint id, bool user) =>
        Lookup(user ? (e, b, n, r) => getpwuid_r(id, e, b, n, r) : (e, b, n, r) => getgrgid_r(id, e, b, n, r))?.Name ?? "";

    private static uint? Lookup(string name, bool user) =>
        Lookup(user ? (e, b, n, r) => getpwnam_r(name, e, b, n, r) : (e, b, n, r) => getgrnam_r(name, e, b, n, r))?.Id;

    /// <summary>
    /// One *_r lookup, with a bigger buffer while it says ERANGE (a group of many members): the entry's name (read
    /// while its buffer is pinned) and id (struct group has its id where struct passwd has pw_uid: the third field
    /// either way); null when there is no such entry.
    /// </summary>
    private static (string Name, uint Id)? Lookup(Call call)
    {
        for (var size = 4096; size <= MaxBuffer; size *= 4)
        {
            var buffer = new byte[size];
            Entry found;
            Entry* result;
            fixed (byte* b = buffer)
            {
                var rc = call(&found, b, (nuint)size, &result);
                if (rc == ERANGE) continue;
                if (rc != 0 || result is null || found.Name is null) return null;
                return (Marshal.PtrToStringUTF8((nint)found.Name) ?? "", found.Id);
            }
        }
        return null;
    }
}
