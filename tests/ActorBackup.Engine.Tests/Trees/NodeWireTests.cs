using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests.Trees;

/// <summary>Node fields whose declaration changed but whose bytes must not: trees already stored keep reading the same.</summary>
public sealed class NodeWireTests
{
    // Node.acl_users (29) and acl_groups (30) as a map<uint32, string> wrote them (node format 3): each entry a
    // length-delimited message of key 1 and value 2, a default key left out.
    private static readonly byte[] MapForm =
    [
        0xEA, 0x01, 0x08, 0x08, 0xE8, 0x07, 0x12, 0x03, (byte)'b', (byte)'o', (byte)'b', // users[1000] = "bob"
        0xEA, 0x01, 0x06, 0x12, 0x04, (byte)'r', (byte)'o', (byte)'o', (byte)'t', // users[0] = "root"
        0xF2, 0x01, 0x07, 0x08, 0x05, 0x12, 0x03, (byte)'t', (byte)'t', (byte)'y', // groups[5] = "tty"
    ];

    [Fact]
    public void ACL_names_read_and_write_the_bytes_a_map_field_wrote()
    {
        var node = Node.Parser.ParseFrom(MapForm);
        Assert.Equal("bob", node.AclUsers.AclName(1000));
        Assert.Equal("root", node.AclUsers.AclName(0));
        Assert.Equal("tty", node.AclGroups.AclName(5));
        Assert.Null(node.AclGroups.AclName(1000));
        Assert.Equal(MapForm, node.ToByteArray()); // the same tree bytes, so the same tree id: nothing stored again

        var built = new Node();
        built.AclUsers.SetAclName(1000, "someone");
        built.AclUsers.SetAclName(0, "root");
        built.AclUsers.SetAclName(1000, "bob"); // replaced where it was, as a map's indexer did
        built.AclGroups.SetAclName(5, "tty");
        Assert.Equal(MapForm, built.ToByteArray());
    }

    [Fact]
    public void Of_two_entries_for_one_id_the_last_counts_as_in_a_map()
    {
        var node = Node.Parser.ParseFrom([.. MapForm, 0xEA, 0x01, 0x08, 0x08, 0xE8, 0x07, 0x12, 0x03, (byte)'e', (byte)'v', (byte)'e']);
        Assert.Equal("eve", node.AclUsers.AclName(1000));
    }
}
