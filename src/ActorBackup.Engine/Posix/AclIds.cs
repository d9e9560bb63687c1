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

    /// <summary>The entries of a well-formed ACL, in its order; none for a value of any other shape.</summary>
    private static List<(ushort Tag, ushort Perm, uint Id)> Entries(ReadOnlySpan<byte> acl)
    {
        var entries = new List<(ushort, ushort, uint)>();
        if (!WellFormed(acl)) return entries;
        for (var at = Header; at < acl.Length; at += EntrySize)
            entries.Add((BinaryPrimitives.ReadUInt16LittleEndian(acl[at..]), BinaryPrimitives.ReadUInt16LittleEndian(acl[(at + 2)..]),
                BinaryPrimitives.ReadUInt32LittleEndian(acl[(at + 4)..])));
        return entries;
    }

    /// <summary>The ids the named entries give rights to: (false, uid) for a user, (true, gid) for a group.</summary>
    public static List<(bool Group, uint Id)> Named(ReadOnlySpan<byte> acl) =>
        [.. Entries(acl).Where(e => e.Tag is AclUser or AclGroup).Select(e => (e.Tag == AclGroup, e.Id))];

    /// <summary>
    /// The ACL with each named entry's id replaced by what <paramref name="map"/> gives it (group, recorded id), its
    /// entries in the order the kernel takes (by tag, a tag's named entries by id: ids mapped elsewhere may not keep
    /// theirs). Two named entries that come to one id (a name that has another's recorded id here) cannot both stay:
    /// the first is kept, and <paramref name="merged"/> lists the others' recorded ids.
    /// </summary>
    public static byte[] Map(ReadOnlySpan<byte> acl, Func<bool, uint, uint> map, out List<(bool Group, uint RecordedId, uint Id)> merged)
    {
        merged = [];
        if (!WellFormed(acl)) return acl.ToArray();
        var entries = Entries(acl).Select(e => (e.Tag, e.Perm, Id: e.Tag is AclUser or AclGroup ? map(e.Tag == AclGroup, e.Id) : e.Id, Recorded: e.Id)).ToList();
        var ordered = entries.Select((e, i) => (Entry: e, Index: i)).OrderBy(x => x.Entry.Tag)
            .ThenBy(x => x.Entry.Tag is AclUser or AclGroup ? x.Entry.Id : 0u).ThenBy(x => x.Index).Select(x => x.Entry).ToList();
        var mapped = new byte[Header + ordered.Count * EntrySize];
        acl[..Header].CopyTo(mapped);
        var at2 = Header;
        for (var i = 0; i < ordered.Count; i++)
        {
            var e = ordered[i];
            if (i > 0 && e.Tag is AclUser or AclGroup && ordered[i - 1].Tag == e.Tag && ordered[i - 1].Id == e.Id)
            {
                merged.Add((e.Tag == AclGroup, e.Recorded, e.Id));
                continue;
            }
            BinaryPrimitives.WriteUInt16LittleEndian(mapped.AsSpan(at2), e.Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(mapped.AsSpan(at2 + 2), e.Perm);
            BinaryPrimitives.WriteUInt32LittleEndian(mapped.AsSpan(at2 + 4), e.Id);
            at2 += EntrySize;
        }
        return mapped[..at2];
    }

    /// <summary>
    /// The mode an entry gets when its access ACL <paramref name="acl"/> cannot be set: with an ACL the mode's group bits
    /// are its mask, not the owning group's; without it they would give the owning group what only named users had
    /// (group::--- with user:bob:rw- is mode 0660). The group bits become the ACL's owning group's within that mask.
    /// </summary>
    public static uint ModeWithoutAcl(uint mode, ReadOnlySpan<byte> acl)
    {
        for (var at = 4; at + 8 <= acl.Length; at += 8)
            if (System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(acl[at..]) == 0x04) // ACL_GROUP_OBJ
            {
                var group = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(acl[(at + 2)..]) & 7u;
                return (mode & ~0x38u) | ((group & ((mode >> 3) & 7u)) << 3);
            }
        return mode;
    }
}
