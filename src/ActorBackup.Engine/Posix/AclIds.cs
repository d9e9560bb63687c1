using System.Buffers.Binary;

namespace ActorBackup.Engine.Posix;

/// <summary>
/// The user and group ids in a POSIX ACL as Linux stores it (system.posix_acl_access / _default: a little-endian
/// version 2, then entries of tag, permissions and id, 2 + 2 + 4 bytes): the named entries (ACL_USER, ACL_GROUP) name
/// someone by id, which another host may give another name. A value of any other shape is left as it is.
/// </summary>
public static class AclIds
{
    private const ushort AclUser = 0x02, AclGroup = 0x08;
    private const int Header = 4, EntrySize = 8;

    /// <summary>Whether <paramref name="name"/> is one of the two ACL attributes.</summary>
    public static bool IsAcl(ReadOnlySpan<byte> name) => name.SequenceEqual("system.posix_acl_access"u8) || name.SequenceEqual("system.posix_acl_default"u8);

    private static bool WellFormed(ReadOnlySpan<byte> acl) =>
        acl.Length >= Header && (acl.Length - Header) % EntrySize == 0 && BinaryPrimitives.ReadUInt32LittleEndian(acl) == 2;

    /// <summary>The ids the named entries give rights to: (false, uid) for a user, (true, gid) for a group.</summary>
    public static List<(bool Group, uint Id)> Named(ReadOnlySpan<byte> acl)
    {
        var named = new List<(bool, uint)>();
        if (!WellFormed(acl)) return named;
        for (var at = Header; at < acl.Length; at += EntrySize)
        {
            var tag = BinaryPrimitives.ReadUInt16LittleEndian(acl[at..]);
            if (tag is AclUser or AclGroup) named.Add((tag == AclGroup, BinaryPrimitives.ReadUInt32LittleEndian(acl[(at + 4)..])));
        }
        return named;
    }

    /// <summary>The ACL with each named entry's id replaced by what <paramref name="map"/> gives it (group, recorded id).</summary>
    public static byte[] Map(ReadOnlySpan<byte> acl, Func<bool, uint, uint> map)
    {
        var mapped = acl.ToArray();
        if (!WellFormed(acl)) return mapped;
        for (var at = Header; at < mapped.Length; at += EntrySize)
        {
            var tag = BinaryPrimitives.ReadUInt16LittleEndian(mapped.AsSpan(at));
            if (tag is not (AclUser or AclGroup)) continue;
            var id = BinaryPrimitives.ReadUInt32LittleEndian(mapped.AsSpan(at + 4));
            BinaryPrimitives.WriteUInt32LittleEndian(mapped.AsSpan(at + 4), map(tag == AclGroup, id));
        }
        return mapped;
    }
}
