using System.CommandLine;
using ActorBackup.Cluster.Client;
using ActorBackup.Engine.Crypto;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup keys issue`: a client host's keyring, issued by a holder of the cell key. A client node given only
/// its keyring backs up and reads its own snapshots; it cannot read another client's trees nor seal a snapshot in
/// another client's name (Engine/Crypto/KeyRing).
/// </summary>
public static class KeysCommand
{
    public static Command Build()
    {
        var keys = new Command("keys", "the cell key and client keyrings");
        var from = new Option<string>("--keys") { Description = "the key folder holding the cell key (master.json)", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "keys") };
        var client = new Option<string>("--client") { Description = "the client id of the host the keyring is for", HelpName = "ID", Required = true };
        var output = new Option<string>("--out") { Description = "folder for the keyring (client.json): the host's key folder (DATA/keys)", HelpName = "DIR", Required = true };
        var issue = new Command("issue", "issue a client host's keyring: the cell's data keys and that client's own, not the cell key") { from, client, output };
        issue.SetAction(pr =>
        {
            var dir = pr.GetValue(from)!;
            var id = pr.GetValue(client)!;
            var o = pr.GetValue(output)!;
            var path = Path.Combine(o, CellKeyring.ClientKeyringFile);
            if (File.Exists(Path.Combine(o, "master.json")))
                throw new UsageException($"{o} holds the cell key (master.json): give the keyring a folder of its own");
            if (File.Exists(path)) throw new UsageException($"{path} exists: remove it first, or give another folder");
            var ring = new KeyRing(CellKeyring.LoadOrCreateMaster(dir, create: false)); // a missing, damaged or locked key: its own clear error
            try
            {
                ring.IssueClientKeyring(id, path);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message); // a bad --client
            }
            Console.WriteLine($"issued client {id}'s keyring: {Path.GetFullPath(path)} (0600)");
            Console.WriteLine($"copy it to that host's key folder (DATA/keys, or actorbackup.key-dir) over a channel you trust; of {dir} itself, keep one copy " +
                              "off this host (nothing restores without it), and no other on the cell's hosts");
            return 0;
        });
        keys.Subcommands.Add(issue);
        var initDir = new Option<string>("--keys") { Description = "the key folder to make the cell key in", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "keys") };
        var init = new Command("init", "make a new cell's key, once, where the cell's first node did not (its CA made apart with 'actorbackup ca init')") { initDir };
        init.SetAction(pr =>
        {
            var dir = pr.GetValue(initDir)!;
            if (File.Exists(Path.Combine(dir, "master.json")) || File.Exists(Path.Combine(dir, CellKeyring.ClientKeyringFile)))
                throw new UsageException($"{dir} holds a key already (master.json or {CellKeyring.ClientKeyringFile}): a cell keeps its key; nothing was made");
            CellKeyring.LoadOrCreateMaster(dir); // and says to keep it
            Console.WriteLine($"made the cell key in {Path.GetFullPath(dir)}");
            return 0;
        });
        keys.Subcommands.Add(init);
        return keys;
    }
}
