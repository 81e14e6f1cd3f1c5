using System.Net;
using System.Net.Sockets;

namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>A loopback UDP relay in front of one server, for one client; it drops the first <c>dropReplies</c> replies (lost acks).</summary>
/// <remarks>
/// Requests go on from <see cref="UpstreamEndPoint"/> (the address the server sees); replies come back from <see cref="EndPoint"/>.
/// With <c>refuseRetransmissions</c> the server behind it acts as a GNS that does not acknowledge identical
/// retransmissions: an Update carrying the same record as one already passed on is answered StaleVersion by the relay.
/// </remarks>
internal sealed class DroppingUdpRelay(IPEndPoint target, int dropReplies, bool refuseRetransmissions = false) : IAsyncDisposable
{
    private readonly List<byte[]> _updates = [];

    private readonly Socket _front = OnLoopback(null);
    private readonly Socket _upstream = OnLoopback(target);
    private readonly CancellationTokenSource _stop = new();
    private IPEndPoint? _client;
    private int _dropReplies = dropReplies;
    private Task _loops = Task.CompletedTask;

    /// <summary>Starts relaying; returns this relay.</summary>
    public DroppingUdpRelay Start()
    {
        _loops = Task.WhenAll(RelayAsync(fromClient: true), RelayAsync(fromClient: false));
        return this;
    }

    public IPEndPoint EndPoint => (IPEndPoint)_front.LocalEndPoint!;

    public IPEndPoint UpstreamEndPoint => (IPEndPoint)_upstream.LocalEndPoint!;

    private static Socket OnLoopback(IPEndPoint? connectTo)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        if (connectTo is not null)
        {
            socket.Connect(connectTo);
        }

        return socket;
    }

    /// <summary>Replies dropped so far.</summary>
    public int Dropped { get; private set; }

    private async Task RelayAsync(bool fromClient)
    {
        var buffer = new byte[2048];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        try
        {
            while (true)
            {
                if (fromClient)
                {
                    var received = await _front.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token);
                    Volatile.Write(ref _client, (IPEndPoint)received.RemoteEndPoint);
                    if (refuseRetransmissions && IsRetransmittedUpdate(buffer.AsSpan(0, received.ReceivedBytes), out var requestId))
                    {
                        var refusal = new byte[GnsDatagram.MaxDatagramSize];
                        var length = GnsDatagram.WriteError(refusal, requestId, GnsErrorCode.StaleVersion, "version not higher");
                        await _front.SendToAsync(refusal.AsMemory(0, length), SocketFlags.None, received.RemoteEndPoint, _stop.Token);
                        continue;
                    }

                    await _upstream.SendAsync(buffer.AsMemory(0, received.ReceivedBytes), SocketFlags.None, _stop.Token);
                }
                else
                {
                    var length = await _upstream.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    if (Interlocked.Decrement(ref _dropReplies) >= 0)
                    {
                        Dropped++;
                    }
                    else if (Volatile.Read(ref _client) is { } client)
                    {
                        await _front.SendToAsync(buffer.AsMemory(0, length), SocketFlags.None, client, _stop.Token);
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>True for an Update whose record (the bytes after the header) an earlier Update carried; remembers new ones.</summary>
    private bool IsRetransmittedUpdate(ReadOnlySpan<byte> datagram, out uint requestId)
    {
        requestId = 0;
        if (!GnsDatagram.TryReadHeader(datagram, out var header) || header.Type != GnsMessageType.Update)
        {
            return false;
        }

        requestId = header.RequestId;
        var body = datagram[GnsDatagram.HeaderSize..];
        foreach (var update in _updates)
        {
            if (body.SequenceEqual(update))
            {
                return true;
            }
        }

        _updates.Add(body.ToArray());
        return false;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _front.Dispose();
        _upstream.Dispose();
        await _loops;
        _stop.Dispose();
    }
}
