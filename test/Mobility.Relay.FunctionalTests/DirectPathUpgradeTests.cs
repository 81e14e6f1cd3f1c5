using System.Diagnostics;
using System.Security.Cryptography;
using Mobility.Protocol.Transport;
using Mobility.Transport;
using Mobility.Transport.Flows;
using Xunit.Abstractions;

namespace Mobility.Relay.FunctionalTests;

/// <summary>
/// Direct paths through the real relay executable: a connection that starts relayed takes the
/// server's direct candidate (CANDIDATES over the session), joins it and moves its stream there while
/// the relayed path stays as a standby; the relay stops carrying the stream; nothing is lost or doubled.
/// </summary>
public sealed class DirectPathUpgradeTests(ITestOutputHelper output)
{
    private const int Chunk = 64 * 1024;

    [Fact]
    public async Task A_relayed_connection_moves_to_the_direct_candidate_without_losing_a_byte()
    {
        await using var relay = await RelayProcess.StartAsync();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance) });
        Assert.StartsWith("relay ", pair.Client.PathKind);
        Assert.StartsWith("relay ", pair.Server.PathKind);

        var transfer = Transfer.Start(pair.Client, pair.Server);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 4 * Chunk), "bytes flow through the relay");
        var clock = Stopwatch.StartNew();
        pair.Server.SetDirectCandidates(punch: false, [new DirectCandidate(DirectCandidateKind.Local, pair.DirectEndPoint)]);

        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct"), "the client uses the direct path");
        // Reported, not asserted (docs/nat.md, "Direct paths"): the time from the server's candidates to the client's switch.
        output.WriteLine(FormattableString.Invariant($"time until direct: {clock.Elapsed.TotalMilliseconds:F1} ms (anchor, the relayed connect of this run: {pair.ConnectTime.TotalMilliseconds:F1} ms)"));
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PathKind == "direct"), "the server uses the direct path");
        Assert.Equal([new DirectCandidate(DirectCandidateKind.Local, pair.DirectEndPoint)], pair.Client.PeerCandidates);
        Assert.Equal(1, pair.Client.Statistics.DirectUpgrades);

        Assert.StartsWith("relay ", pair.Client.StandbyRelay);
        Assert.StartsWith("relay ", pair.Server.StandbyRelay);

        // From now on the stream goes direct: once what was in flight through the relay has drained, its
        // byte counter stands still (but for the standby path's keepalives) while megabytes more cross.
        await TestTimeout.Eventually(async () =>
        {
            var before = await relay.MetricAsync("relay_bytes_total");
            var received = transfer.Received;
            await TestTimeout.Eventually(() => transfer.Received > received + (4L << 20), "4 MiB more cross");
            return await relay.MetricAsync("relay_bytes_total") - before < 64 * 1024;
        }, "the relay's byte counter stops growing");

        await transfer.FinishAsync();
    }

    /// <summary>With <paramref name="punch"/> both ends can punch: the client's tries are refused as often as it repeats them.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_candidate_nobody_answers_at_leaves_the_connection_relayed_and_intact(bool punch)
    {
        await using var relay = await RelayProcess.StartAsync();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions
        {
            FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance),
            DirectAttemptTimeout = TimeSpan.FromMilliseconds(500),
        });
        var closed = new IPEndPoint(IPAddress.Loopback, Ports.FreeTcp(IPAddress.Loopback));

        var transfer = Transfer.Start(pair.Client, pair.Server);
        if (punch)
        {
            pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, new IPEndPoint(IPAddress.Loopback, Ports.FreeTcp(IPAddress.Loopback)))]);
        }

        pair.Server.SetDirectCandidates(punch, [new DirectCandidate(DirectCandidateKind.Reflexive, closed)]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PeerCandidates.Count == 1), "the client has the candidate");
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");

        Assert.StartsWith("relay ", pair.Client.PathKind);
        Assert.Equal(0, pair.Client.Statistics.DirectUpgrades);
        await transfer.FinishAsync();
    }

    [Fact]
    public async Task With_direct_paths_off_the_candidates_are_ignored()
    {
        await using var relay = await RelayProcess.StartAsync();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions
        {
            FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance),
            DirectPaths = false,
        });

        var transfer = Transfer.Start(pair.Client, pair.Server);
        pair.Server.SetDirectCandidates(punch: false, [new DirectCandidate(DirectCandidateKind.Local, pair.DirectEndPoint)]);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();

        Assert.Empty(pair.Client.PeerCandidates);
        Assert.StartsWith("relay ", pair.Client.PathKind);
        Assert.Equal(0, pair.Client.Statistics.DirectUpgrades);
    }

    [Fact]
    public async Task Both_ends_punch_at_once_and_the_relayed_connection_goes_direct_without_losing_a_byte()
    {
        await using var relay = await RelayProcess.StartAsync();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance) });
        var clientPort = Ports.FreeTcp(IPAddress.Loopback);

        var transfer = Transfer.Start(pair.Client, pair.Server);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 4 * Chunk), "bytes flow through the relay");
        // Both ends report endpoint-independent mapping: a coordinated simultaneous open from each end's port.
        pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, new IPEndPoint(IPAddress.Loopback, clientPort))]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PeerCandidates.Count == 1), "the server has the client's candidate");
        pair.Server.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, pair.DirectEndPoint)]);

        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct"), "the client uses the punched path");
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PathKind == "direct"), "the server uses the punched path");
        Assert.StartsWith("relay ", pair.Client.StandbyRelay);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();
    }

    [Fact]
    public async Task A_flow_the_server_punched_carries_the_clients_join_and_becomes_the_direct_path()
    {
        // The client's side of the punch takes the server's SYN on its own port (the server's SYN won):
        // the flow the server connected from its listener's port, not one its listener accepted, must
        // reach the Join handling and become the direct path.
        await using var relay = await RelayProcess.StartAsync();
        var answering = new AnsweringPunch();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(answering) });

        var transfer = Transfer.Start(pair.Client, pair.Server);
        pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, answering.EndPoint)]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PeerCandidates.Count == 1), "the server has the client's candidate");
        pair.Server.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, pair.DirectEndPoint)]);

        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct" && pair.Server.PathKind == "direct"), "both ends use the punched path");
        Assert.Equal(pair.DirectEndPoint.Port, answering.Accepted!.Port);
        Assert.Equal(1, pair.Client.Statistics.DirectUpgrades);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_server_punches_only_an_address_the_clients_record_publishes(bool published)
    {
        // The client names its reflexive candidate itself; the server's punch target locator (mobilityd: the client's
        // GNS record) decides whether the server sends SYNs there. The client's side only waits for the server's connect.
        await using var relay = await RelayProcess.StartAsync();
        var answering = new AnsweringPunch();
        var records = new Records();
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(answering), DirectAttemptTimeout = TimeSpan.FromMilliseconds(500) },
            new MobileListenerOptions { PunchTargetLocator = records });
        records.Endpoints = [published ? new IPEndPoint(IPAddress.Loopback, 7391) : IPEndPoint.Parse("192.0.2.66:7391")];

        var transfer = Transfer.Start(pair.Client, pair.Server);
        pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, answering.EndPoint)]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PeerCandidates.Count == 1), "the server has the client's candidate");
        pair.Server.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, pair.DirectEndPoint)]);

        if (published)
        {
            await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct" && pair.Server.PathKind == "direct"), "both ends use the punched path");
            Assert.Equal(pair.DirectEndPoint.Port, answering.Accepted!.Port);
        }
        else
        {
            // Two punches asked and refused (the back-off lets a second one come), each after the lookup.
            await TestTimeout.Eventually(() => Task.FromResult(Volatile.Read(ref records.Lookups) >= 2), "the server looked the client up for two punches");
            Assert.Null(answering.Accepted);
            Assert.StartsWith("relay ", pair.Client.PathKind);
        }

        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();
    }

    [Fact]
    public async Task The_server_checks_the_clients_record_when_its_candidates_arrive_and_the_punch_that_follows_uses_that_check()
    {
        // The lookup behind the punch target check used to start only when the PUNCH came (0.5 s under load in the
        // netlab, with the client's SYNs already going out); now it starts with the client's candidates.
        await using var relay = await RelayProcess.StartAsync();
        var answering = new AnsweringPunch();
        var records = new Records { Endpoints = [new IPEndPoint(IPAddress.Loopback, 7391)] };
        // Call backs and connection reversal off: their look at the client's record when the connection starts would be
        // one more lookup here.
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(answering) },
            new MobileListenerOptions { PunchTargetLocator = records, CallBack = false, ConnectionReversal = false });

        var transfer = Transfer.Start(pair.Client, pair.Server);
        pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, answering.EndPoint)]);
        // No PUNCH can come yet: the client has no candidates of the server's to punch.
        await TestTimeout.Eventually(() => Task.FromResult(Volatile.Read(ref records.Lookups) == 1), "the server looked the client up on its candidates");
        Assert.Null(answering.Accepted);

        pair.Server.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, pair.DirectEndPoint)]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct" && pair.Server.PathKind == "direct"), "both ends use the punched path");
        Assert.Equal(pair.DirectEndPoint.Port, answering.Accepted!.Port);
        Assert.Equal(1, Volatile.Read(ref records.Lookups)); // the punch took the check made with the candidates
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();
    }

    [Fact]
    public async Task Repeated_candidates_make_the_server_look_the_client_up_once_until_a_punch_takes_the_check()
    {
        await using var relay = await RelayProcess.StartAsync();
        var answering = new AnsweringPunch();
        var records = new Records { Endpoints = [new IPEndPoint(IPAddress.Loopback, 7391)] };
        // Call backs and connection reversal off: their look at the client's record when the connection starts would be
        // one more lookup here.
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(answering) },
            new MobileListenerOptions { PunchTargetLocator = records, CallBack = false, ConnectionReversal = false });

        var transfer = Transfer.Start(pair.Client, pair.Server);
        for (var i = 0; i < 20; i++)
        {
            pair.Client.SetDirectCandidates(punch: true, [new DirectCandidate(DirectCandidateKind.Reflexive, answering.EndPoint)]);
        }

        // The client may coalesce the twenty into fewer frames (a list owed but not yet sent is replaced); the last
        // (another list, so the server's view shows that it arrived) comes after them.
        pair.Client.SetDirectCandidates(punch: true,
            [new DirectCandidate(DirectCandidateKind.Reflexive, answering.EndPoint), new DirectCandidate(DirectCandidateKind.Local, answering.EndPoint)]);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Server.PeerCandidates.Count == 2), "the server has the client's last candidates");
        Assert.Equal(1, Volatile.Read(ref records.Lookups));
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 1L << 20), "1 MiB crosses");
        await transfer.FinishAsync();
    }

    [Fact]
    public async Task The_server_reverses_a_relayed_connection_to_the_clients_published_listener_and_it_goes_direct_without_losing_a_byte()
    {
        // Connection reversal over real sockets and the real relay: the server sends no candidates, the client dials
        // nothing; the server dials the client's listener (the endpoint its record publishes) from an ephemeral port.
        await using var relay = await RelayProcess.StartAsync();
        var clientKey = HostKey.Generate();
        var records = new Records();
        var clientOptions = new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance) };
        await using var clientListener = new MobileListener(clientKey);
        clientListener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        records.Endpoints = [clientListener.LocalEndPoint];
        await using var pair = await DirectPair.OpenAsync(relay.Tcp, clientOptions, new MobileListenerOptions { PunchTargetLocator = records }, clientKey,
            connector => clientListener.AcceptCallBacksFor(connector));

        var transfer = Transfer.Start(pair.Client, pair.Server);
        await TestTimeout.Eventually(() => Task.FromResult(pair.Client.PathKind == "direct" && pair.Server.PathKind == "direct"), "both ends use the reversed path");
        // Dialled from an ephemeral port, not the server's transport port (a reversal from there could hold a punch's 4-tuple).
        Assert.NotEqual(pair.DirectEndPoint.Port, pair.Client.RemoteEndPoint!.Port);
        Assert.Empty(pair.Client.PeerCandidates);
        Assert.Equal(1, pair.Client.Statistics.DirectUpgrades);
        Assert.StartsWith("relay ", pair.Client.StandbyRelay);
        Assert.StartsWith("relay ", pair.Server.StandbyRelay);
        await TestTimeout.Eventually(() => Task.FromResult(transfer.Received > 8L << 20), "8 MiB cross");
        await transfer.FinishAsync();
    }

    /// <summary>The client's published endpoints, as the server's punch target locator sees them.</summary>
    private sealed class Records : IPeerLocator
    {
        public int Lookups;

        public IReadOnlyList<IPEndPoint> Endpoints { get; set; } = [];

        public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged { add { } remove { } }

        public ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(Mobility.Protocol.Identity.HostGuid guid, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Lookups);
            return ValueTask.FromResult(Endpoints);
        }
    }

    /// <summary>
    /// Flows as TCP, but its side of a simultaneous open waits for the peer's connect on its own port
    /// (a listener there): the flow the server's punch connected, seen from the client.
    /// </summary>
    private sealed class AnsweringPunch : IFlowFactory
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(IPAddress.Loopback, 0);

        public AnsweringPunch() => _listener.Start();

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        /// <summary>Where the accepted punch came from (the server's listener port).</summary>
        public IPEndPoint? Accepted { get; private set; }

        public bool CanPunch => true;

        public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
            => TcpFlowFactory.Instance.ConnectAsync(remote, localAddress, cancellationToken);

        public async ValueTask<IFlow> PunchAsync(IPEndPoint remote, int localPort, CancellationToken cancellationToken)
        {
            Assert.Equal(EndPoint.Port, localPort);
            var socket = await _listener.AcceptSocketAsync(cancellationToken);
            Accepted = (IPEndPoint)socket.RemoteEndPoint!;
            return new TcpFlow(socket);
        }
    }

    /// <summary>One direction's checked stream: random bytes written until finished, hashed at both ends.</summary>
    private sealed class Transfer
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly IncrementalHash _sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly IncrementalHash _received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private Task _writing = Task.CompletedTask;
        private Task<long> _reading = Task.FromResult(0L);
        private long _receivedBytes;
        private long _sentBytes;

        public long Received => Interlocked.Read(ref _receivedBytes);

        public static Transfer Start(MobileConnection from, MobileConnection to)
        {
            var transfer = new Transfer();
            transfer._writing = Task.Run(() => transfer.WriteAsync(from));
            transfer._reading = Task.Run(() => transfer.ReadAsync(to));
            return transfer;
        }

        private async Task WriteAsync(MobileConnection connection)
        {
            var buffer = new byte[Chunk];
            while (!_stop.IsCancellationRequested)
            {
                RandomNumberGenerator.Fill(buffer);
                _sent.AppendData(buffer);
                await connection.Stream.WriteAsync(buffer);
                _sentBytes += buffer.Length;
            }

            connection.ShutdownWrite();
        }

        private async Task<long> ReadAsync(MobileConnection connection)
        {
            var buffer = new byte[Chunk];
            int read;
            while ((read = await connection.Stream.ReadAsync(buffer)) > 0)
            {
                _received.AppendData(buffer.AsSpan(0, read));
                Interlocked.Add(ref _receivedBytes, read);
            }

            return Received;
        }

        /// <summary>Stops writing, reads to the end and checks the stream: same length, same SHA-256.</summary>
        public async Task FinishAsync()
        {
            await _stop.CancelAsync();
            await _writing.WithTimeout();
            var total = await _reading.WithTimeout();
            Assert.Equal(_sentBytes, total);
            Assert.Equal(_sent.GetHashAndReset(), _received.GetHashAndReset());
        }
    }

    /// <summary>A server with a relay registration and a direct TCP endpoint on loopback; the client reaches it through the relay.</summary>
    private sealed class DirectPair(HostKey clientKey) : IAsyncDisposable
    {
        private readonly HostKey _serverKey = HostKey.Generate();
        private readonly HostKey _clientKey = clientKey;
        private MobileListener _listener = null!;
        private RelayFlowListener _registration = null!;
        private Task _serving = Task.CompletedTask;

        public MobileConnection Client { get; private set; } = null!;

        public MobileConnection Server { get; private set; } = null!;

        public IPEndPoint DirectEndPoint => _listener.LocalEndPoint;

        /// <summary>How long the client's connect through the relay took (an anchor for timings of the same run).</summary>
        public TimeSpan ConnectTime { get; private set; }

        public static async Task<DirectPair> OpenAsync(IPEndPoint relay, MobileConnectionOptions clientOptions, MobileListenerOptions? serverOptions = null,
            HostKey? clientKey = null, Action<MobileConnector>? withConnector = null)
        {
            var pair = new DirectPair(clientKey ?? HostKey.Generate());
            pair._listener = new MobileListener(pair._serverKey, serverOptions);
            pair._listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
            pair._registration = await RelayFlowListener.RegisterAsync(pair._serverKey, relay).WithTimeout();
            pair._serving = pair._listener.ServeAsync(pair._registration);
            var connector = new MobileConnector(pair._clientKey, clientOptions);
            withConnector?.Invoke(connector);
            var accepting = pair._listener.AcceptAsync().AsTask();
            var clock = Stopwatch.StartNew();
            pair.Client = await connector.ConnectAsync(new RelayEndPoint(relay.Address, relay.Port, pair._serverKey.Guid), pair._serverKey.Guid).WithTimeout();
            pair.ConnectTime = clock.Elapsed;
            pair.Server = await accepting.WithTimeout();
            return pair;
        }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            await _registration.DisposeAsync();
            await _listener.DisposeAsync();
            await _serving.WithTimeout();
        }
    }
}
