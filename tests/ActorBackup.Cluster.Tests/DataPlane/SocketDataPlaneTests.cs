using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.Tests;

/// <summary>The socket data plane on its own: a real server on 127.0.0.1, a real library behind it.</summary>
public sealed class SocketDataPlaneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-plane-").FullName;
    private readonly DataPlaneSessions _sessions = new();
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _node;
    private readonly DataPlaneServer _server;
    private readonly DiskLibrary _library;
    private readonly List<string> _tickets = [];

    public SocketDataPlaneTests()
    {
        _node = _cell.Node();
        // A handshake timeout no stall of a busy machine reaches (the test of the timeout itself has a server of its own).
        _server = new DataPlaneServer("127.0.0.1", 0, TimeSpan.FromSeconds(5), _sessions, _node, handshakeTimeout: TimeSpan.FromSeconds(30));
        _library = DiskLibrary.Create(Path.Combine(_dir, "lib"), "lib1");
    }

    public void Dispose()
    {
        _tickets.ForEach(_sessions.Close);
        _server.Dispose();
        _library.Dispose();
        _node.Dispose();
        _cell.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private SocketChannel Connect(bool write)
    {
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write);
        _tickets.Add(ticket);
        return new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, _node.ClientOptions("lib1"));
    }

    private static ChunkId Id(int i)
    {
        var bytes = new byte[ChunkId.Size];
        BitConverter.TryWriteBytes(bytes, i);
        bytes[31] = 0xAB;
        return new ChunkId(bytes);
    }

    private static byte[] Payload(int i) => Enumerable.Range(0, 1000 + i * 37).Select(b => (byte)(b * 31 + i)).ToArray();

    /// <summary>Stores chunks 0..count-1 through a socket write session and makes them durable in the library.</summary>
    private void Store(int count)
    {
        using var channel = Connect(write: true);
        for (var i = 0; i < count; i++)
        {
            Assert.True(channel.TryReserve(Id(i)));
            channel.Append(Id(i), RecordFlags.None, Payload(i));
        }
        Assert.Empty(channel.Missing([.. Enumerable.Range(0, count).Select(Id)])); // also waits for the streamed appends
        _library.Commit();
    }

    [Fact]
    public void A_reference_list_larger_than_a_reply_comes_back_whole_in_pages()
    {
        // Pages of 3 ids, as pages of 4 Mi ids carry the list of a snapshot that one frame could not (a 16 TiB file).
        using var paged = new DataPlaneServer("127.0.0.1", 0, TimeSpan.FromSeconds(5), _sessions, _node, handshakeTimeout: TimeSpan.FromSeconds(30))
        {
            ReferencesPerReply = 3,
        };
        var ids = Enumerable.Range(0, 10).Select(Id).Order().ToList();
        using (var writer = Connect(write: true)) writer.AddReferences("snap1", ids);
        _library.Commit();
        foreach (var (server, what) in new[] { (paged, "in pages of 3"), (_server, "in one page") })
        {
            var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: false);
            _tickets.Add(ticket);
            using var reader = new SocketChannel("127.0.0.1", server.Endpoint.Port, ticket, _node.ClientOptions("lib1"));
            Assert.True(ids.SequenceEqual(reader.ReadReferences("snap1")), what);
            Assert.Throws<LibraryFaultException>(() => reader.ReadReferences("nosuch"));
        }
        // Two lists paged at once on two connections: the server keeps one list for its next pages, not one a
        // connection; the other is read again a page, and both come back whole.
        var others = Enumerable.Range(100, 61).Select(Id).Order().ToList(); // 21 pages a read: the two readers' pages interleave
        using (var writer = Connect(write: true)) writer.AddReferences("snap2", others);
        _library.Commit();
        var together = new Barrier(2);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var readers = Enumerable.Range(0, 2).Select(n => new Thread(() =>
        {
            try
            {
                var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: false);
                lock (_tickets) _tickets.Add(ticket);
                using var reader = new SocketChannel("127.0.0.1", paged.Endpoint.Port, ticket, _node.ClientOptions("lib1"));
                together.SignalAndWait();
                for (var round = 0; round < (n == 0 ? 200 : 30); round++)
                    Assert.True((n == 0 ? ids : others).SequenceEqual(reader.ReadReferences(n == 0 ? "snap1" : "snap2")), $"list {n + 1}, round {round}");
            }
            catch (Exception e)
            {
                failures.Enqueue(e);
                together.RemoveParticipant();
            }
        })).ToList();
        readers.ForEach(t => t.Start());
        readers.ForEach(t => t.Join());
        Assert.Empty(failures);
    }

    [Fact]
    public void Read_ahead_delivers_every_chunk_in_order_and_an_unknown_one_as_its_own_error()
    {
        Store(100);
        using var channel = Connect(write: false);
        var ids = Enumerable.Range(0, 100).Select(Id).ToList();
        ids.Insert(40, Id(5000)); // never stored
        var buffer = Array.Empty<byte>();
        var seen = new List<int>();
        ((IChunkSource)channel).ReadPayloads(ids, ref buffer, (i, payload, flags, error) =>
        {
            seen.Add(i);
            if (i == 40)
            {
                Assert.IsType<IOException>(error);
                Assert.Contains("media agent", error!.Message);
                return;
            }
            Assert.Null(error);
            Assert.Equal(Payload(i < 40 ? i : i - 1), payload.ToArray());
        });
        Assert.Equal(Enumerable.Range(0, 101), seen);
    }

    [Fact]
    public void Threads_that_come_and_go_reuse_the_connections_of_the_ended_ones()
    {
        // A restore starts new threads for each wave of files: each wave's threads opened connections of their own,
        // until the media node refused the session's 129th (a restore of about 500,000 files on two cores).
        Store(20);
        using var channel = Connect(write: false);
        for (var wave = 0; wave < 40; wave++)
        {
            var failures = new List<Exception>();
            var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
            {
                try
                {
                    var buffer = Array.Empty<byte>();
                    var ids = Enumerable.Range(0, 20).Where(i => i % 2 == t).Select(Id).ToList();
                    ((IChunkSource)channel).ReadPayloads(ids, ref buffer, (i, payload, _, error) =>
                    {
                        Assert.Null(error);
                        Assert.Equal(Payload(i * 2 + t), payload.ToArray());
                    });
                }
                catch (Exception e)
                {
                    lock (failures) failures.Add(e);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Empty(failures);
        }
        Assert.InRange(channel.Connections, 1, 3); // the constructor's and one for each thread alive at once
    }

    [Fact]
    public void A_thread_that_ended_in_the_middle_of_an_exchange_leaves_its_connection_to_no_other()
    {
        Store(1);
        using var channel = Connect(write: true);
        // The RESERVE of a stored chunk is answered "no"; its thread ends before it reads the answer.
        var first = new Thread(() => channel.StartReserve(Id(0)));
        first.Start();
        first.Join();
        bool reserved = false;
        var second = new Thread(() => reserved = channel.TryReserve(Id(99)));
        second.Start();
        second.Join();
        Assert.True(reserved); // its own answer, not the "no" left on the first thread's connection
        Assert.Equal(3, channel.Connections);
    }

    [Fact]
    public void A_handler_that_throws_ends_the_batch_and_leaves_the_connection_usable()
    {
        Store(50);
        using var channel = Connect(write: false);
        var buffer = Array.Empty<byte>();
        var calls = 0;
        var e = Assert.Throws<InvalidOperationException>(() => ((IChunkSource)channel).ReadPayloads(
            [.. Enumerable.Range(0, 50).Select(Id)], ref buffer, (i, _, _, _) =>
            {
                calls++;
                if (i == 3) throw new InvalidOperationException("disk full");
            }));
        Assert.Equal("disk full", e.Message);
        Assert.Equal(4, calls);
        // The replies still in flight were drained: the next read on this thread's connection gets its own chunk.
        Assert.Equal(Payload(7), channel.ReadPayload(Id(7), ref buffer, out _).ToArray());
    }

    [Fact]
    public void The_encoder_seals_while_its_reservation_travels_and_drops_a_chunk_the_library_has()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        using var session = keys.Cipher.BeginUpload();
        var known = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
        var fresh = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 13 + 1)).ToArray();
        using (var first = Connect(write: true))
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        {
            Assert.True(encoder.Store(known, RecordFlags.None, first).IsNew);
            Assert.Empty(first.Missing([keys.Hasher.Hash(known)]));
            _library.Commit();
        }
        using var channel = Connect(write: true);
        Assert.True(((IChunkSink)channel).DefersReserve);
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        {
            var again = encoder.Store(known, RecordFlags.None, channel);
            Assert.False(again.IsNew); // the library had it: nothing appended
            var added = encoder.Store(fresh, RecordFlags.None, channel);
            Assert.True(added.IsNew);
            // The connection is in step: the next question gets its own answer.
            Assert.Empty(channel.Missing([keys.Hasher.Hash(known), added.Id]));
        }
        _library.Commit();
        using var decoder = new ChunkDecoder(keys);
        Assert.Equal(fresh, decoder.Load(keys.Hasher.Hash(fresh), _library).ToArray());
        Assert.Equal(2, _library.ChunkCount);
    }

    [Fact]
    public async Task A_connection_that_ends_holding_a_reservation_gives_it_back()
    {
        var first = Connect(write: true);
        Assert.True(first.TryReserve(Id(1)));
        var second = Connect(write: true);
        // Reserve, append and confirm on one thread: each thread has its own connection, and a connection appends
        // only what it reserved.
        var waiting = Task.Factory.StartNew(() =>
        {
            if (!second.TryReserve(Id(1))) return false;
            second.Append(Id(1), RecordFlags.None, Payload(1));
            return second.Missing([Id(1)]).Count == 0;
        }, TaskCreationOptions.LongRunning);
        Assert.False(await Task.WhenAny(waiting, Task.Delay(200)) == waiting, "the chunk is being stored by the first connection");
        first.Dispose(); // its client died before appending
        await waiting.WaitAsync(TimeSpan.FromSeconds(10)); // the reservation must come back when the connection ends
        Assert.True(await waiting);
        second.Dispose();
    }

    [Fact]
    public async Task A_media_node_that_does_not_reply_in_time_loses_the_connection_instead_of_holding_the_thread()
    {
        using var first = Connect(write: true);
        Assert.True(first.TryReserve(Id(1)));
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", true);
        _tickets.Add(ticket);
        using var second = new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, _node.ClientOptions("lib1"), replyTimeout: TimeSpan.FromSeconds(1));
        // The media node waits for the first connection's chunk (as one whose disk hangs would wait): no reply comes.
        var waiting = Task.Factory.StartNew(() => second.TryReserve(Id(1)), TaskCreationOptions.LongRunning);
        var e = await Assert.ThrowsAsync<DataPlaneLostException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("no reply within 1 s", e.Message);
    }

    [Fact]
    public void A_connection_holds_at_most_a_few_reservations_and_a_writer_stuck_on_one_fails_its_waiters_in_time()
    {
        using (var greedy = Connect(write: true))
        {
            for (var i = 0; i < SocketFrames.MaxHeld; i++) Assert.True(greedy.TryReserve(Id(100 + i)));
            var e = Assert.Throws<LibraryFaultException>(() => greedy.TryReserve(Id(200)));
            Assert.Contains($"holds {SocketFrames.MaxHeld} reservations already", e.Message);
        }
        // A reservation held past the library's wait limit fails the writer waiting on it, saying why.
        _library.ReserveWaitLimit = TimeSpan.FromMilliseconds(300);
        using var stuck = Connect(write: true);
        Assert.True(stuck.TryReserve(Id(1)));
        using var waiter = Connect(write: true);
        var refused = Assert.Throws<LibraryBusyException>(() => waiter.TryReserve(Id(1))); // a passing trouble: the job is tried again
        Assert.Contains("being stored by another writer", refused.Message);
        // The same in the node's own process (a session of this ActorSystem's: no socket).
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", true);
        _tickets.Add(ticket);
        using var inPlace = _sessions.Connect(new SessionOpened { Ticket = ticket, Library = "lib1" }, TimeSpan.FromSeconds(5));
        Assert.Throws<LibraryBusyException>(() => inPlace.TryReserve(Id(1)));
    }

    [Fact]
    public void A_reference_list_is_read_by_a_copys_media_node_only()
    {
        var ids = Enumerable.Range(0, 5).Select(Id).Order().ToList();
        using (var writer = Connect(write: true)) writer.AddReferences("snap1", ids);
        _library.Commit();
        var expires = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();
        SocketChannel Reader(JobTicket ticket)
        {
            var opened = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: false, ticket);
            _tickets.Add(opened);
            return new SocketChannel("127.0.0.1", _server.Endpoint.Port, opened, _node.ClientOptions("lib1"));
        }
        // A client host's look or restore: no list (each ask had the node read and pack a whole list).
        using (var client = Reader(new JobTicket { Job = "look-1", Client = "node1", Read = { "lib1" }, ExpiresUnixMs = expires }))
            Assert.Contains("read by a copy's media node only", Assert.Throws<LibraryFaultException>(() => client.ReadReferences("snap1")).Message);
        // A copy into another library, whose media node holds the ticket: the list.
        using var copy = Reader(new JobTicket { Job = "7", HolderLibrary = "lib1", Read = { "lib1" }, ExpiresUnixMs = expires });
        Assert.True(ids.SequenceEqual(copy.ReadReferences("snap1")));
    }

    [Fact]
    public void A_large_record_takes_room_among_all_connections_and_gives_it_back_after_it()
    {
        var big = new byte[SocketFrames.MaxRequest + 4096];
        Random.Shared.NextBytes(big);
        // Other connections hold all the room: the append waits for it, and goes on once it is given back.
        _server.LargeFrames.Take(1L << 30, TimeSpan.FromSeconds(1));
        var writer = Connect(write: true);
        Exception? failed = null;
        var appending = new Thread(() => // reserve, append and confirm on one thread: each thread has its own connection
        {
            try
            {
                Assert.True(writer.TryReserve(Id(9)));
                writer.Append(Id(9), RecordFlags.None, big);
                Assert.Empty(writer.Missing([Id(9)])); // appended (the appends stream: this waits for it)
            }
            catch (Exception e)
            {
                failed = e;
            }
        });
        appending.Start();
        Assert.False(appending.Join(300));
        _server.LargeFrames.Give(1L << 30);
        Assert.True(appending.Join(TimeSpan.FromSeconds(30)));
        Assert.Null(failed);
        writer.Dispose();
        Assert.Equal(0, _server.LargeFrames.Used); // given back after the frame
        Assert.True(_library.Contains(Id(9)));
        // The room itself: a frame waits while others hold it, goes on when they give it back, fails after its wait.
        var budget = new FrameBudget(10);
        budget.Take(6, TimeSpan.FromSeconds(1));
        var waiting = new Thread(() => budget.Take(6, TimeSpan.FromSeconds(60)));
        waiting.Start();
        Assert.False(waiting.Join(100));
        budget.Give(6);
        Assert.True(waiting.Join(TimeSpan.FromSeconds(30)));
        Assert.Contains("try again later", Assert.Throws<LibraryBusyException>(() => budget.Take(6, TimeSpan.FromMilliseconds(50))).Message); // a passing trouble: the job is tried again
    }

    [Fact]
    public void A_session_is_in_use_while_a_connection_serves_it()
    {
        // What the media agent asks before it closes a session whose ticket expired (a look whose client node went).
        var channel = Connect(write: false);
        var ticket = _tickets[^1];
        Assert.Contains(Id(1), channel.Missing([Id(1)])); // connected and served
        Assert.True(_sessions.InUse(ticket));
        channel.Dispose(); // the client went away: its connection ends
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (_sessions.InUse(ticket) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.False(_sessions.InUse(ticket));
    }

    [Fact]
    public void An_unknown_ticket_is_refused_with_what_to_do()
    {
        var e = Assert.Throws<LibraryFaultException>(() => new SocketChannel("127.0.0.1", _server.Endpoint.Port, "no-such-ticket", _node.ClientOptions("lib1")));
        Assert.Contains("ask the media agent for a new session", e.Message);
    }

    [Fact]
    public void A_read_session_cannot_append()
    {
        Store(1);
        using var channel = Connect(write: false);
        channel.Append(Id(9), RecordFlags.None, Payload(9));
        var e = Assert.Throws<LibraryFaultException>(() => channel.Contains(Id(0))); // the media agent's refusal: a library fault
        Assert.Contains("append refused", e.Message);
        Assert.False(_library.Contains(Id(9)));
    }

    [Fact]
    public void An_append_of_a_chunk_the_connection_did_not_reserve_is_refused_and_never_replaces_a_stored_one()
    {
        Store(3);
        using (var channel = Connect(write: true))
        {
            // Over a chunk the library holds: the bytes of an attacker, under the id of chunk 1.
            channel.Append(Id(1), RecordFlags.None, Payload(2));
            var e = Assert.Throws<LibraryFaultException>(() => channel.Contains(Id(0)));
            Assert.Contains("did not reserve it", e.Message);
        }
        using (var channel = Connect(write: true))
        {
            // A new id, never reserved.
            channel.Append(Id(77), RecordFlags.None, Payload(77));
            Assert.Throws<LibraryFaultException>(() => channel.Commit());
        }
        _library.Commit();
        Assert.False(_library.Contains(Id(77)));
        using var reader = Connect(write: false);
        var buffer = Array.Empty<byte>();
        Assert.Equal(Payload(1), reader.ReadPayload(Id(1), ref buffer, out _).ToArray()); // the stored chunk, byte for byte
    }

    [Fact]
    public void A_client_streams_only_to_a_node_certified_as_a_media_node_of_the_library_it_asked_for()
    {
        // A node of the cell that claims library lib1 in the cluster (and so may get its shard) but whose certificate
        // says otherwise: a client's backup must not stream to it (it would swallow the data and "commit").
        foreach (var (roles, libraries) in new[] { (new[] { "client" }, new[] { "lib1" }), (new[] { "media" }, new[] { "lib2" }) })
        {
            using var rogue = _cell.Node(ActorBackup.Protocol.Trust.CellIdentity.Of(ActorBackup.Protocol.Trust.CellRole.Node, "rogue", "rogue", roles, libraries));
            using var server = new DataPlaneServer("127.0.0.1", 0, TimeSpan.FromSeconds(5), _sessions, rogue, handshakeTimeout: TimeSpan.FromSeconds(30));
            var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: true);
            _tickets.Add(ticket);
            var e = Assert.Throws<DataPlaneLostException>(() => new SocketChannel("127.0.0.1", server.Endpoint.Port, ticket, _node.ClientOptions("lib1")));
            Assert.Contains("TLS", e.Message);
        }
        // The media node of lib1 is reached as before.
        using var channel = Connect(write: true);
    }

    [Fact]
    public void A_peer_without_a_certificate_of_the_cell_is_refused_in_the_handshake()
    {
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: true);
        _tickets.Add(ticket);
        using var other = new TestTrust("elsewhere");
        using var stranger = other.Node("mallory");
        var e = Assert.Throws<DataPlaneLostException>(() => new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, stranger.ClientOptions("lib1")));
        Assert.Contains("TLS", e.Message);
        // An operator's certificate of this very cell is no node's: the data plane is between nodes.
        var (operatorCert, _) = _cell.Issue(ActorBackup.Protocol.Trust.CellIdentity.Of(ActorBackup.Protocol.Trust.CellRole.Operator, "alice"));
        Assert.ThrowsAny<IOException>(() =>
        {
            using var channel = new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, ActorBackup.Protocol.Trust.CellCertificates.ClientOptions(operatorCert, _cell.Ca));
        });
        // And a plain socket that claims the largest frame in its first bytes gets nothing: no TLS, no session.
        using var plain = new System.Net.Sockets.TcpClient("127.0.0.1", _server.Endpoint.Port);
        var head = new byte[5];
        head[0] = 1;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(1), int.MaxValue);
        plain.GetStream().Write(head);
        // Closed at once, not at the handshake's deadline (30 s here): SslStream alone would wait for the bytes the
        // "record" claims, and a port scan would hold handshake places.
        AssertClosed(plain.GetStream(), within: TimeSpan.FromSeconds(20));
        Assert.Equal(3, Store3AndCount()); // the server goes on serving
    }

    [Fact]
    public void A_session_opened_under_a_jobs_ticket_admits_only_the_tickets_holder()
    {
        // The ticket is client host-a's: node1 (a node of this very cell, client node1) learnt the session's ticket.
        var jobTicket = JobTickets.For(new JobInfo { Id = "7", Client = "host-a", Library = "lib1" }, [], ["lib1"], DateTimeOffset.UtcNow);
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: true, jobTicket);
        _tickets.Add(ticket);
        var e = Assert.Throws<LibraryFaultException>(() => new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, _node.ClientOptions("lib1")));
        Assert.Contains("the node of client host-a", e.Message);
        var identity = ActorBackup.Protocol.Trust.CellIdentity.Of(ActorBackup.Protocol.Trust.CellRole.Node, "host-a", "host-a", ["client"]);
        using var hostA = new NodeTrust(_cell.Dir, System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(_cell.Ca.RawData),
            _cell.Issue(identity).Certificate, identity);
        using (var channel = new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, hostA.ClientOptions("lib1")))
        {
            Assert.True(channel.TryReserve(Id(5)));
            channel.Append(Id(5), RecordFlags.None, Payload(5));
            Assert.Empty(channel.Missing([Id(5)])); // also waits for the streamed append
        }
        _library.Commit();
        Assert.True(_library.Contains(Id(5)));
    }

    [Fact]
    public void A_channel_in_place_gives_back_its_reservations_after_its_session_closed()
    {
        // A job's session closed under it (the manager gave the attempt up): the next attempt's writer must not wait on
        // the chunks the closed one held for the whole reservation timeout.
        _library.ReserveWaitLimit = TimeSpan.FromSeconds(3);
        foreach (var release in new[] { true, false })
        {
            var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: true);
            var channel = _sessions.Connect(new SessionOpened { Ticket = ticket, Library = "lib1" }, TimeSpan.FromSeconds(5));
            var id = Id(release ? 40 : 41);
            Assert.True(channel.TryReserve(id));
            _sessions.Close(ticket);
            Assert.ThrowsAny<IOException>(() => channel.Append(id, RecordFlags.None, Payload(1)));
            if (release) channel.Release(id); // as the encoder does when its append failed
            else channel.Dispose(); // or as the job's end does
            Assert.True(_library.TryReserve(id)); // at once: a held one would throw LibraryBusyException after 3 s
            _library.Release(id);
            channel.Dispose();
        }
        // A channel releases only what it reserved: another writer's reservation stays its own.
        var ticket2 = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: true);
        _tickets.Add(ticket2);
        using var mine = _sessions.Connect(new SessionOpened { Ticket = ticket2, Library = "lib1" }, TimeSpan.FromSeconds(5));
        Assert.True(_library.TryReserve(Id(42)));
        mine.Release(Id(42));
        Assert.Throws<LibraryBusyException>(() => _library.TryReserve(Id(42)));
        _library.Release(Id(42));
    }

    private int Store3AndCount()
    {
        Store(3);
        return _library.ChunkCount;
    }

    [Fact]
    public void A_chunk_the_library_lacks_is_that_chunks_damage_and_a_lost_session_is_a_fault_of_the_source()
    {
        Store(2);
        using var reader = Connect(write: false);
        var buffer = Array.Empty<byte>();
        // Missing: damage a restore reports and goes past (and a verify heals), one read at a time or in a batch.
        var missing = Assert.ThrowsAny<IOException>(() => reader.ReadPayload(Id(99), ref buffer, out _));
        Assert.IsNotAssignableFrom<ActorBackup.Engine.Codec.ISourceFault>(missing);
        Assert.True(ActorBackup.Engine.Codec.SourceFault.IsDamage(missing));
        var errors = new List<Exception?>();
        reader.ReadPayloads([Id(1), Id(99)], ref buffer, (_, _, _, error) => errors.Add(error));
        Assert.Null(errors[0]);
        Assert.True(errors[1] is not null && ActorBackup.Engine.Codec.SourceFault.IsDamage(errors[1]!));
        // The session gone (its job ended): a fault of the source, which stops a restore instead of calling data damaged.
        _tickets.ForEach(_sessions.Close);
        var lost = Assert.ThrowsAny<IOException>(() => reader.ReadPayload(Id(1), ref buffer, out _));
        Assert.IsAssignableFrom<ActorBackup.Engine.Codec.ISourceFault>(lost);
    }

    [Fact]
    public void A_write_session_adds_only_to_its_own_new_snapshots_reference_list()
    {
        const string mine = "0123456789abcdef", other = "fedcba9876543210", committed = "00112233445566ff";
        _library.AddReferences(committed, [Id(9)]);
        _library.Commit();
        using (var channel = Connect(write: true))
        {
            channel.AddReferences(mine, [Id(1)]);
            channel.AddReferences(mine, [Id(2)]); // the same snapshot again: its list in parts
            Assert.Contains("not " + other, Assert.ThrowsAny<IOException>(() => channel.AddReferences(other, [Id(3)])).Message);
        }
        // Another snapshot's committed list: not one a session may add to (it would pin what a prune takes).
        using (var channel = Connect(write: true))
            Assert.Contains("already has a reference list", Assert.ThrowsAny<IOException>(() => channel.AddReferences(committed, [Id(4)])).Message);
        Assert.Equal([Id(9)], _library.ReadReferences(committed));
    }

    [Fact]
    public void A_connection_releases_only_the_reservations_it_holds()
    {
        using var holder = Connect(write: true);
        using var other = Connect(write: true);
        Assert.True(holder.TryReserve(Id(5)));
        other.Release(Id(5)); // not its own: nothing happens
        // The chunk is still the holder's: another writer waits for its append or release (then stores it itself).
        // (A thread, not a task: the channel's connections are its threads', and this one must stay the holder's.)
        using var reserved = new ManualResetEventSlim();
        new Thread(() =>
        {
            if (_library.TryReserve(Id(5))) reserved.Set();
        }) { IsBackground = true }.Start();
        Assert.False(reserved.Wait(TimeSpan.FromMilliseconds(300)), "another connection's release let a second writer reserve the chunk");
        holder.Release(Id(5));
        Assert.True(reserved.Wait(TimeSpan.FromSeconds(30)));
        _library.Release(Id(5));
    }

    /// <summary>A raw TLS connection admitted to a new session (its HELLO answered).</summary>
    private System.Net.Security.SslStream Admitted(System.Net.Sockets.TcpClient tcp, bool write)
    {
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write);
        _tickets.Add(ticket);
        var tls = new System.Net.Security.SslStream(tcp.GetStream());
        tls.AuthenticateAsClient(_node.ClientOptions("lib1"));
        var hello = System.Text.Encoding.UTF8.GetBytes(ticket);
        var head = new byte[5];
        head[0] = SocketFrames.Hello;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(1), hello.Length);
        tls.Write([.. head, .. hello]);
        tls.Flush();
        var reply = new byte[5];
        tls.ReadExactly(reply);
        Assert.Equal(0, reply[0]);
        return tls;
    }

    /// <summary>The server closed the connection (it reads end of stream, or a reset).</summary>
    private static void AssertClosed(Stream stream, TimeSpan? within = null)
    {
        stream.ReadTimeout = (int)(within ?? TimeSpan.FromSeconds(30)).TotalMilliseconds;
        try
        {
            Assert.Equal(0, stream.Read(new byte[16]));
        }
        catch (IOException e) when (e.InnerException is not System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.TimedOut })
        {
            // reset: closed either way (a read that timed out is not: the server still waits)
        }
    }

    [Theory]
    [InlineData(false, SocketFrames.Append)] // a read session: no append, so no frame of a chunk's size
    [InlineData(false, SocketFrames.Missing)]
    [InlineData(true, SocketFrames.Missing)] // a write session: only an append may be that big
    public void A_frame_bigger_than_its_request_may_be_ends_the_connection_before_its_bytes_are_read(bool write, byte code)
    {
        using var tcp = new System.Net.Sockets.TcpClient("127.0.0.1", _server.Endpoint.Port);
        using var tls = Admitted(tcp, write);
        var head = new byte[5];
        head[0] = code;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(1), SocketFrames.MaxRequest + 1);
        tls.Write(head);
        tls.Flush();
        AssertClosed(tls);
    }

    [Fact]
    public void One_session_holds_at_most_half_the_connections_of_a_media_node_and_another_is_admitted_still()
    {
        var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: false);
        _tickets.Add(ticket);
        var held = new List<SocketChannel>();
        try
        {
            for (var i = 0; i < DataPlaneServer.MaxPerSession; i++) held.Add(new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, _node.ClientOptions("lib1")));
            var refused = Assert.ThrowsAny<IOException>(() => new SocketChannel("127.0.0.1", _server.Endpoint.Port, ticket, _node.ClientOptions("lib1")));
            Assert.Contains($"this session holds {DataPlaneServer.MaxPerSession} connections already", refused.Message);
            using var other = Connect(write: false); // another job's session: admitted, room left for it
        }
        finally
        {
            held.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void Connections_that_never_finish_their_handshake_do_not_take_the_sessions_slots()
    {
        using var server = new DataPlaneServer("127.0.0.1", 0, TimeSpan.FromSeconds(5), _sessions, _node, handshakeTimeout: TimeSpan.FromSeconds(60));
        // As many silent connections as one address may have in their handshake: the next from it is closed at once.
        var silent = Enumerable.Range(0, Handshakes.MaxPerAddress).Select(_ => new System.Net.Sockets.TcpClient("127.0.0.1", server.Endpoint.Port)).ToList();
        try
        {
            var ticket = _sessions.Open(_library, ActorRefs.Nobody, "lib1", write: false);
            _tickets.Add(ticket);
            // Accepted one at a time: the silent ones are counted once the server has taken them all.
            Assert.ThrowsAny<IOException>(() =>
            {
                for (var tries = 0; tries < 600; tries++)
                {
                    using var probe = new SocketChannel("127.0.0.1", server.Endpoint.Port, ticket, _node.ClientOptions("lib1"));
                    Thread.Sleep(50);
                }
            });
        }
        finally
        {
            silent.ForEach(c => c.Dispose());
        }
        // They go (closed by their peer): a node of the cell is admitted again.
        var admitted = false;
        for (var tries = 0; tries < 600 && !admitted; tries++)
            try
            {
                using var channel = new SocketChannel("127.0.0.1", server.Endpoint.Port, _tickets[^1], _node.ClientOptions("lib1"));
                admitted = true;
            }
            catch (IOException)
            {
                Thread.Sleep(50);
            }
        Assert.True(admitted);
    }

    [Fact]
    public void A_hello_that_claims_more_than_a_ticket_is_refused_before_anything_of_its_size_is_read()
    {
        using var tcp = new System.Net.Sockets.TcpClient("127.0.0.1", _server.Endpoint.Port);
        using var tls = new System.Net.Security.SslStream(tcp.GetStream());
        tls.AuthenticateAsClient(_node.ClientOptions("lib1"));
        var head = new byte[5];
        head[0] = 1; // HELLO
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(1), 1 << 30);
        tls.Write(head);
        tls.Flush();
        AssertClosed(tls, within: TimeSpan.FromSeconds(20)); // at once, not at the 30 s deadline
    }

    [Fact]
    public void A_connection_that_stays_silent_after_its_handshake_is_closed()
    {
        // The server's handshake timeout (TLS and HELLO) here is 15 s: the TLS part gets done well within it, then the
        // server must close first.
        using var server = new DataPlaneServer("127.0.0.1", 0, TimeSpan.FromSeconds(5), _sessions, _node, handshakeTimeout: TimeSpan.FromSeconds(15));
        using var tcp = new System.Net.Sockets.TcpClient("127.0.0.1", server.Endpoint.Port);
        using var tls = new System.Net.Security.SslStream(tcp.GetStream());
        tls.AuthenticateAsClient(_node.ClientOptions("lib1"));
        tls.ReadTimeout = 60_000;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            Assert.Equal(0, tls.Read(new byte[16]));
        }
        catch (IOException)
        {
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), "the silent connection was not closed by the server");
    }
}
