using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;

namespace Mobility.Transport.Tests;

/// <summary>
/// Attackers on real loopback sockets, each from its own 127.x.y.z source (or all from one): an
/// idle attacker connects and says nothing; a half-done one sends a genuine ClientHello and never its
/// ClientFinish. Each holds its socket until the listener closes it and connects again <c>renew</c>
/// after its previous connect (the "renewed every 5 s"), until disposed; their first connects
/// are spread over one <c>renew</c>, so the flood opens about <c>attackers / renew</c> connections a second.
/// </summary>
internal sealed class LoopbackFlood : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _attackers;
    private readonly byte[] _hello;
    private int _open;
    private long _connects;
    private long _refused;

    /// <param name="source">The source of attacker <c>i</c>.</param>
    public LoopbackFlood(IPEndPoint target, int idle, int halfDone, Func<int, IPAddress> source, TimeSpan renew)
    {
        using var ephemeral = new EphemeralKey();
        var key = HostKey.Generate();
        _hello = new ClientHello(HandshakeFlags.None, key.Guid, key.PublicKeyBytes(), ephemeral.PublicKey, TransportRandom.Nonce(),
            TransportRandom.Token(), HostGuid.Empty, 1 << 20).ToArray();
        _attackers = Enumerable.Range(0, idle + halfDone)
            .Select(i => Task.Run(() => AttackAsync(target, source(i), i >= idle, renew, renew * i / (idle + halfDone))))
            .ToArray();
    }

    /// <summary>Attacker sockets connected now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>TCP connections the attackers completed so far.</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Connects that failed (refused, reset before the accept, or no address).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public int Size => _attackers.Length;

    /// <summary>The soft limit on open descriptors (each attacker costs one here and one in the listener).</summary>
    public static int DescriptorLimit()
    {
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var soft = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
                return soft == "unlimited" ? int.MaxValue : int.Parse(soft, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 1024;
    }

    private async Task AttackAsync(IPEndPoint target, IPAddress source, bool sendHello, TimeSpan renew, TimeSpan start)
    {
        var ct = _stop.Token;
        var buffer = new byte[512];
        var next = start;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var wait = next - clock.Elapsed;   // read the clock once: it moves between two reads
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, ct);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }

            next = clock.Elapsed + renew;
            using (var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp))
            {
                var open = false;
                try
                {
                    socket.Bind(new IPEndPoint(source, 0));
                    await socket.ConnectAsync(target, ct);
                    Interlocked.Increment(ref _connects);
                    Interlocked.Increment(ref _open);
                    open = true;
                    if (sendHello)
                    {
                        await socket.SendAsync(_hello, ct);
                    }

                    // Hold it (reading whatever comes: a ServerHello, a CookieReply) until the listener closes it.
                    while (await socket.ReceiveAsync(buffer, ct) > 0)
                    {
                    }
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    if (!open && !ct.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _refused);
                    }
                }
                finally
                {
                    if (open)
                    {
                        Interlocked.Decrement(ref _open);
                    }
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_attackers).WaitAsync(TimeSpan.FromSeconds(60));
        _stop.Dispose();
    }
}
