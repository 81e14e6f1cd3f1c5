using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Mobility.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Relay.FunctionalTests;

/// <summary>Splices through the real relay executable: bytes both ways, mobile TCP on top, what the relay sees.</summary>
public sealed class RelaySpliceTests
{
    [Fact]
    public async Task A_splice_carries_bytes_both_ways_unchanged()
    {
        await using var relay = await RelayProcess.StartAsync();
        using var host = HostKey.Generate();
        await using var registration = await RelayFlowListener.RegisterAsync(host, relay.Tcp).WithTimeout();

        var accepting = registration.AcceptAsync(CancellationToken.None).AsTask();
        await using var dialled = await RelayFlows.DialAsync(relay.Tcp, host.Guid).AsTask().WithTimeout();
        await using var accepted = await accepting.WithTimeout();

        var up = RandomNumberGenerator.GetBytes(1 << 20);
        var down = RandomNumberGenerator.GetBytes(1 << 20);
        var sending = Task.WhenAll(
            dialled.Stream.WriteAsync(up).AsTask(),
            accepted.Stream.WriteAsync(down).AsTask());
        var receivedUp = new byte[up.Length];
        var receivedDown = new byte[down.Length];
        await Task.WhenAll(
            accepted.Stream.ReadExactlyAsync(receivedUp).AsTask(),
            dialled.Stream.ReadExactlyAsync(receivedDown).AsTask()).WithTimeout();
        await sending.WithTimeout();

        Assert.Equal(SHA256.HashData(up), SHA256.HashData(receivedUp));
        Assert.Equal(SHA256.HashData(down), SHA256.HashData(receivedDown));
        Assert.Equal(1, await relay.MetricAsync("relay_active_splices"));

        // One side closes: the relay flushes what it holds and closes the other (FIN).
        await dialled.DisposeAsync();
        Assert.Equal(0, await accepted.Stream.ReadAsync(new byte[16]).AsTask().WithTimeout());
        await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_active_splices") == 0, "the splice is gone");
        Assert.Equal(2L << 20, await relay.MetricAsync("relay_bytes_total"));
    }

    [ToolFact("tcpdump", "tcpdump")]
    public async Task A_mobile_connection_through_the_relay_carries_a_marker_the_relay_never_sees()
    {
        await using var relay = await RelayProcess.StartAsync();
        var capture = Path.Combine(Path.GetTempPath(), $"relay-{Guid.NewGuid():N}.pcap");
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var tcpdump = new Process
        {
            StartInfo = new ProcessStartInfo("tcpdump", ["-i", "lo", "-U", "-s", "0", "-w", capture, "tcp", "port", relay.Tcp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            {
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        tcpdump.ErrorDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("listening on", StringComparison.Ordinal) == true)
            {
                listening.TrySetResult();
            }
        };
        tcpdump.Start();
        tcpdump.BeginErrorReadLine();
        try
        {
            await listening.Task.WithTimeout();
            var marker = Encoding.ASCII.GetBytes($"PLAINTEXT-MARKER-{Guid.NewGuid():N}");
            await using (var pair = await RelayedPair.OpenAsync(relay.Tcp))
            {
                for (var i = 0; i < 50; i++)
                {
                    await pair.Client.Stream.WriteAsync(marker).AsTask().WithTimeout();
                }

                await pair.Client.Stream.FlushAsync().WithTimeout();
                var received = new byte[marker.Length * 50];
                await pair.Server.Stream.ReadExactlyAsync(received).AsTask().WithTimeout();
                Assert.Equal(marker, received[..marker.Length]);
            }

            // tcpdump writes each packet as it reads it (-U): wait until the relay's messages and the relayed
            // bytes are in the file and it stops growing, then stop it (SIGINT).
            long size = -1;
            await TestTimeout.Eventually(async () =>
            {
                await Task.Delay(200);
                var bytes = await ReadSharedAsync(capture);
                var settled = bytes.Length == size && bytes.AsSpan().IndexOf("MRLY"u8) >= 0 && bytes.Length > marker.Length * 50;
                size = bytes.Length;
                return settled;
            }, "the capture holds the relayed traffic");
            // SIGINT: tcpdump flushes the capture and exits.
            await Tool.RunAsync("kill", ["-INT", tcpdump.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await tcpdump.WaitForExitAsync().WithTimeout();
            var captured = await ReadSharedAsync(capture);
            // The capture saw the relay's traffic (its protocol's magic in the clear, and the relayed bytes) ...
            Assert.True(captured.AsSpan().IndexOf("MRLY"u8) >= 0, $"the capture ({captured.Length} bytes) holds the relay's own messages");
            Assert.True(captured.Length > marker.Length * 50, "the capture holds the relayed bytes");
            // ... but never the application's marker: the relay carries only the session's ciphertext.
            Assert.True(captured.AsSpan().IndexOf(marker) < 0, "the marker crossed the relay in the clear");
        }
        finally
        {
            if (!tcpdump.HasExited)
            {
                tcpdump.Kill();
            }

            File.Delete(capture);
        }
    }

    [Fact]
    public async Task A_flood_of_silent_connections_is_bounded_and_a_host_registers_once_they_time_out()
    {
        var environment = new Dictionary<string, string>
        {
            ["RELAY_Relay__Limits__MaxUnidentified"] = "20",
            ["RELAY_Relay__Limits__FirstMessageTimeout"] = "00:00:02",
        };
        await using var relay = await RelayProcess.StartAsync(environment: environment);
        var flood = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 200; i++)
            {
                var client = new TcpClient();
                flood.Add(client);
                await client.ConnectAsync(relay.Tcp).WithTimeout();
            }

            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_connections_total") == 200, "the relay accepted the flood");
            Assert.True(await relay.MetricAsync("relay_unidentified") <= 20);
            Assert.True(await relay.MetricAsync("relay_unidentified_dropped_total") >= 180);

            // The silent ones are closed after the first-message timeout; then a genuine host registers.
            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_first_message_timeouts_total") >= 1, "silent connections time out");
            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_unidentified") == 0, "every silent connection is gone");
            using var host = HostKey.Generate();
            await using var registration = await RelayFlowListener.RegisterAsync(host, relay.Tcp).WithTimeout();
            Assert.Equal(1, await relay.MetricAsync("relay_hosts"));
        }
        finally
        {
            flood.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task A_flooding_source_holds_only_its_share_and_a_host_from_another_source_registers_meanwhile()
    {
        var environment = new Dictionary<string, string>
        {
            ["RELAY_Relay__Limits__MaxUnidentifiedPerSource"] = "20",
            ["RELAY_Relay__Limits__FirstMessageTimeout"] = "00:01:00",
        };
        await using var relay = await RelayProcess.StartAsync(environment: environment);
        var flood = new List<Socket>();
        try
        {
            // 200 silent connections from 127.0.0.2: far fewer than MaxUnidentified (1,000), but one source.
            for (var i = 0; i < 200; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                flood.Add(socket);
                socket.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
                await socket.ConnectAsync(relay.Tcp).WithTimeout();
            }

            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_connections_total") == 200, "the relay accepted the flood");
            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_unidentified_dropped_total") == 180, "180 connections closed at once");
            Assert.Equal(20, await relay.MetricAsync("relay_unidentified"));

            // The flood is still held (its timeout is a minute away); a host from 127.0.0.1 registers all the same.
            using var host = HostKey.Generate();
            await using var registration = await RelayFlowListener.RegisterAsync(host, relay.Tcp).WithTimeout();
            Assert.Equal(1, await relay.MetricAsync("relay_hosts"));
            await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_unidentified") == 20, "the registration identified");
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task A_relay_restart_keeps_the_mobile_connection()
    {
        var port = Ports.FreeTcp(IPAddress.Loopback);
        var listen = $"127.0.0.1:{port}";
        var relay = await RelayProcess.StartAsync(listen);
        try
        {
            await using var pair = await RelayedPair.OpenAsync(relay.Tcp, keepRegistered: true);
            await Roundtrip(pair, 1);

            await relay.DisposeAsync();
            relay = await RelayProcess.StartAsync(listen);

            // The host registers again (the daemon does this with its --relay list); the client resumes through the relay.
            await Roundtrip(pair, 2);
            Assert.True(await relay.MetricAsync("relay_splices_total") >= 1);
        }
        finally
        {
            await relay.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_splice_whose_host_registers_again_from_another_address_is_cut_at_once_and_the_mobile_connection_resumes()
    {
        await using var relay = await RelayProcess.StartAsync();
        await using var pair = await RelayedPair.OpenAsync(relay.Tcp);
        await Roundtrip(pair, 1);
        Assert.Equal(1, await relay.MetricAsync("relay_splices_total"));

        // The host "moved": it registers again from 127.0.0.2 while its old registration and the data connection
        // of the splice (from 127.0.0.1) still look alive. Nothing is sent on the mobile connection meanwhile, so
        // only the relay's cut can make the client resume: it sees its relayed path end and dials again.
        await pair.RegisterAgainAsync(relay.Tcp, IPAddress.Parse("127.0.0.2"));
        await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_splices_cut_total") == 1, "the old splice is cut");
        await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_splices_total") == 2, "the client resumed through the relay");
        Assert.Equal(1, await relay.MetricAsync("relay_hosts"));

        await Roundtrip(pair, 2);
        await Roundtrip(pair, 3);
    }

    [Fact]
    public async Task A_splice_whose_host_control_connection_closes_is_cut_at_once()
    {
        await using var relay = await RelayProcess.StartAsync();
        using var host = HostKey.Generate();
        var control = await RelayWire.ConnectAsync(relay.Tcp);
        Assert.Equal(RelayStatus.Ok, await control.RegisterAsync(nonce => RelayProof.Create(host, nonce, relay.Tcp)));

        var dialling = RelayFlows.DialAsync(relay.Tcp, host.Guid).AsTask();
        var request = Assert.IsType<RelaySpliceRequest>(await control.ReceiveAsync(RelayMessage.HeaderSize + RelayMessage.SpliceIdSize));
        await using var data = await RelayWire.ConnectAsync(relay.Tcp);
        await data.SendAsync(new RelayAccept(host.Guid, request.SpliceId));
        Assert.Equal(new RelayResult(RelayStatus.Ok), await data.ReceiveAsync(RelayMessage.HeaderSize + 1));
        await using var dialled = await dialling.WithTimeout();

        // The data connection stays open; only the registration ends.
        await control.DisposeAsync();
        Assert.True(await EndedAsync(dialled.Stream), "the dialler's side of the splice ends");
        Assert.True(await data.ClosedByRelayAsync(), "the host's data connection is closed");
        Assert.Equal(1, await relay.MetricAsync("relay_splices_cut_total"));
    }

    /// <summary>True once <paramref name="stream"/> reads end of stream or fails (a reset).</summary>
    private static async Task<bool> EndedAsync(Stream stream)
    {
        try
        {
            return await stream.ReadAsync(new byte[64]).AsTask().WithTimeout() == 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var copy = new MemoryStream();
        await file.CopyToAsync(copy);
        return copy.ToArray();
    }

    private static async Task Roundtrip(RelayedPair pair, byte fill)
    {
        var bytes = Enumerable.Repeat(fill, 64 * 1024).ToArray();
        await pair.Client.Stream.WriteAsync(bytes).AsTask().WithTimeout();
        var received = new byte[bytes.Length];
        await pair.Server.Stream.ReadExactlyAsync(received).AsTask().WithTimeout();
        Assert.Equal(bytes, received);
        await pair.Server.Stream.WriteAsync(bytes).AsTask().WithTimeout();
        await pair.Client.Stream.ReadExactlyAsync(received).AsTask().WithTimeout();
        Assert.Equal(bytes, received);
    }

    /// <summary>A mobile TCP connection from a client to a host reachable only through the relay.</summary>
    private sealed class RelayedPair : IAsyncDisposable
    {
        private readonly HostKey _serverKey = HostKey.Generate();
        private readonly HostKey _clientKey = HostKey.Generate();
        private readonly CancellationTokenSource _stop = new();
        private MobileListener _listener = null!;
        private Task _registrations = Task.CompletedTask;

        public MobileConnection Client { get; private set; } = null!;

        public MobileConnection Server { get; private set; } = null!;

        public static async Task<RelayedPair> OpenAsync(IPEndPoint relay, bool keepRegistered = false)
        {
            var pair = new RelayedPair();
            pair._listener = new MobileListener(pair._serverKey);
            var first = await RelayFlowListener.RegisterAsync(pair._serverKey, relay).WithTimeout();
            pair._registrations = pair.ServeAsync(first, relay, keepRegistered);
            var connector = new MobileConnector(pair._clientKey, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance) });
            var accepting = pair._listener.AcceptAsync().AsTask();
            pair.Client = await connector.ConnectAsync(new RelayEndPoint(relay.Address, relay.Port, pair._serverKey.Guid), pair._serverKey.Guid).WithTimeout();
            pair.Server = await accepting.WithTimeout();
            return pair;
        }

        /// <summary>Registers the host once more, from <paramref name="source"/> (a host that moved), and serves that registration too.</summary>
        public async Task RegisterAgainAsync(IPEndPoint relay, IPAddress source)
        {
            var again = await RelayFlowListener.RegisterAsync(_serverKey, relay, new FromAddress(source)).WithTimeout();
            Assert.Equal(source, again.ControlEndPoint?.Address);
            _registrations = Task.WhenAll(_registrations, ServeAsync(again, relay, again: false));
        }

        /// <summary>TCP flows from one local address.</summary>
        private sealed class FromAddress(IPAddress source) : IFlowFactory
        {
            public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
                => TcpFlowFactory.Instance.ConnectAsync(remote, localAddress ?? source, cancellationToken);
        }

        /// <summary>Serves each registration until it ends, then (when asked to) registers again until it succeeds.</summary>
        private async Task ServeAsync(RelayFlowListener registration, IPEndPoint relay, bool again)
        {
            while (true)
            {
                await using (registration)
                {
                    await _listener.ServeAsync(registration);
                }

                if (!again || _stop.IsCancellationRequested)
                {
                    return;
                }

                while (true)
                {
                    try
                    {
                        registration = await RelayFlowListener.RegisterAsync(_serverKey, relay, cancellationToken: _stop.Token);
                        break;
                    }
                    catch (Exception e) when (e is IOException or SocketException)
                    {
                        await Task.Delay(100, _stop.Token);
                    }
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            await _listener.DisposeAsync();
            try
            {
                await _registrations.WithTimeout();
            }
            catch (OperationCanceledException)
            {
            }

            _serverKey.Dispose();
            _clientKey.Dispose();
            _stop.Dispose();
        }
    }
}
