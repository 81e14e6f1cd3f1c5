using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Bench.Transport;

/// <summary>
/// Time until the client holds a usable connection, one connection at a time, on 127.0.0.1:
/// <list type="bullet">
/// <item><c>tcp</c>: <c>Socket.ConnectAsync</c> (SYN, SYN-ACK);</item>
/// <item><c>tls13</c>: TCP connect, then <c>SslStream.AuthenticateAsClientAsync</c> with TLS 1.3
/// only against a self-signed ECDSA P-256 certificate (the client pins it), 1 round trip;</item>
/// <item><c>mobile</c>: <c>MobileConnector.ConnectAsync(endpoint, guid)</c>: TCP connect,
/// ClientHello, ServerHello verified (Ed25519 + X25519 on both sides), 1 round trip on top of TCP's.</item>
/// </list>
/// The servers accept in loops of their own; blocks of <c>count</c> connections alternate by round.
/// </summary>
internal static class Handshake
{
    private static readonly string[] Systems = ["tcp", "tls13", "mobile"];

    public static async Task<int> RunAsync(int count, int rounds, string? json)
    {
        using var serverKey = HostKey.Generate();
        using var clientKey = HostKey.Generate();
        using var certificate = SelfSigned();
        using var stop = new CancellationTokenSource();

        await using var listener = new MobileListener(serverKey, new MobileListenerOptions());
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var mobileServer = Task.Run(async () =>
        {
            var open = new List<Task>();
            while (!stop.IsCancellationRequested)
            {
                MobileConnection connection;
                try
                {
                    connection = await listener.AcceptAsync(stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
                {
                    break;
                }

                open.Add(connection.WaitForEndAsync().ContinueWith(_ => connection.DisposeAsync().AsTask(), TaskScheduler.Default).Unwrap());
                open.RemoveAll(t => t.IsCompleted);
            }

            await Task.WhenAll(open);
        });

        using var tcpListener = Listen();
        var tcpServer = AcceptLoopAsync(tcpListener, socket =>
        {
            socket.Dispose();
            return Task.CompletedTask;
        }, stop.Token);

        using var tlsListener = Listen();
        var tlsServer = AcceptLoopAsync(tlsListener, async socket =>
        {
            await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificate,
                    EnabledSslProtocols = SslProtocols.Tls13,
                }, stop.Token);
                // Hold the connection until the client closes it.
                _ = await ssl.ReadAsync(new byte[1], stop.Token);
            }
            catch (Exception e) when (e is IOException or AuthenticationException or OperationCanceledException)
            {
                // The client went away.
            }
        }, stop.Token);

        var connector = new MobileConnector(clientKey, new MobileConnectionOptions());
        var thumbprint = certificate.GetCertHash(HashAlgorithmName.SHA256);
        var clientTls = new SslClientAuthenticationOptions
        {
            TargetHost = "transport-bench",
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHash(HashAlgorithmName.SHA256).AsSpan().SequenceEqual(thumbprint),
        };

        var samples = Systems.ToDictionary(s => s, _ => new List<double>());
        Console.WriteLine($"handshake: {count} connections per block, {rounds} rounds of ({string.Join(", ", Systems)}), one at a time, load average {Measure.LoadAverage()}");
        for (var round = 0; round <= rounds; round++)
        {
            foreach (var system in Systems)
            {
                // Round 0 warms up (JIT, pools) and is not counted.
                var block = round == 0 ? samples[system].Take(0).ToList() : samples[system];
                var closing = new List<Task>();
                for (var i = 0; i < (round == 0 ? Math.Min(count, 50) : count); i++)
                {
                    var clock = Stopwatch.StartNew();
                    switch (system)
                    {
                        case "tcp":
                            {
                                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                                await socket.ConnectAsync(tcpListener.LocalEndPoint!);
                                block.Add(clock.Elapsed.TotalMicroseconds);
                                socket.Dispose();
                                break;
                            }

                        case "tls13":
                            {
                                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                                await socket.ConnectAsync(tlsListener.LocalEndPoint!);
                                var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
                                await ssl.AuthenticateAsClientAsync(clientTls);
                                block.Add(clock.Elapsed.TotalMicroseconds);
                                await ssl.DisposeAsync();
                                break;
                            }

                        default:
                            {
                                var connection = await connector.ConnectAsync(listener.LocalEndPoint, listener.Guid);
                                block.Add(clock.Elapsed.TotalMicroseconds);
                                // Closing costs a round trip and a 50 ms grace on reset: off the clock, in the background.
                                closing.Add(connection.DisposeAsync().AsTask());
                                break;
                            }
                    }
                }

                await Task.WhenAll(closing);
            }

            if (round > 0)
            {
                Console.WriteLine($"round {round} done, load average {Measure.LoadAverage()}");
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(mobileServer, tcpServer, tlsServer);

        Console.WriteLine();
        Console.WriteLine($"{"system",-8} {"n",6} {"p50 µs",9} {"p90 µs",9} {"p99 µs",9} {"mean µs",9} {"p50 / tcp",10} {"p50 / tls13",12}");
        var medians = new Dictionary<string, double>();
        var rows = new List<object>();
        foreach (var system in Systems)
        {
            var sorted = samples[system].Order().ToList();
            medians[system] = Measure.Percentile(sorted, 50);
        }

        foreach (var system in Systems)
        {
            var sorted = samples[system].Order().ToList();
            var (p50, p90, p99, mean) = (Measure.Percentile(sorted, 50), Measure.Percentile(sorted, 90), Measure.Percentile(sorted, 99), sorted.Average());
            Console.WriteLine($"{system,-8} {sorted.Count,6} {Measure.F(p50, "0"),9} {Measure.F(p90, "0"),9} {Measure.F(p99, "0"),9} {Measure.F(mean, "0"),9} {Measure.F(p50 / medians["tcp"]),10} {Measure.F(p50 / medians["tls13"]),12}");
            rows.Add(new { system, n = sorted.Count, p50, p90, p99, mean });
        }

        Console.WriteLine($"load average {Measure.LoadAverage()}");
        Measure.WriteJson(json, new { count, rounds, results = rows });
        return 0;
    }

    private static Socket Listen()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(512);
        return socket;
    }

    private static async Task AcceptLoopAsync(Socket listener, Func<Socket, Task> serve, CancellationToken cancellationToken)
    {
        var open = new List<Task>();
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            open.Add(Task.Run(() => serve(socket), CancellationToken.None));
            open.RemoveAll(t => t.IsCompleted);
        }

        await Task.WhenAll(open);
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=transport-bench", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Through PKCS#12 so that SslStream gets a certificate with a usable private key on every platform.
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pfx), null);
    }
}
