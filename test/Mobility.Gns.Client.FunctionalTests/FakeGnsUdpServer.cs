using System.Collections.Concurrent;
using Mobility.Protocol;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>
/// A scriptable GNS datagram responder on 127.0.0.1, built from the <see cref="GnsDatagram"/> reply
/// writers. By default it answers from <see cref="Records"/>; <see cref="Responder"/> overrides that
/// per request (return null to drop the request). Replies can be sent from a second socket
/// (another source port) to test that the client ignores them.
/// </summary>
internal sealed class FakeGnsUdpServer : IAsyncDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly Socket _other = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _requests;

    public FakeGnsUdpServer()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _other.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _loop = RunAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public ConcurrentDictionary<HostGuid, GnsRecord> Records { get; } = new();

    /// <summary>Requests received so far (including dropped ones).</summary>
    public int RequestCount => Volatile.Read(ref _requests);

    public ConcurrentQueue<GnsRequest> Requests { get; } = new();

    /// <summary>The first this many requests are dropped unanswered.</summary>
    public int DropFirst { get; set; }

    /// <summary>Replies go out from another port (so the client must ignore them).</summary>
    public bool ReplyFromOtherPort { get; set; }

    /// <summary>Extra datagrams to send (from the server's own port) before each reply: hostile noise.</summary>
    public Func<GnsRequest, IEnumerable<byte[]>>? Noise { get; set; }

    /// <summary>Replies to a request; null drops it. Defaults to <see cref="Answer"/>.</summary>
    public Func<GnsRequest, IPEndPoint, byte[]?>? Responder { get; set; }

    public byte[]? Answer(GnsRequest request, IPEndPoint source)
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        int length;
        switch (request.Type)
        {
            case GnsMessageType.LookupGuid:
                length = Records.TryGetValue(request.Guid, out var record)
                    ? RecordReply(buffer, request.RequestId, record)
                    : GnsDatagram.WriteError(buffer, request.RequestId, GnsErrorCode.NotFound, "No record.");
                break;
            case GnsMessageType.LookupName:
                var named = Records.Values.FirstOrDefault(r => r.Name == request.Name);
                length = named is not null
                    ? RecordReply(buffer, request.RequestId, named)
                    : GnsDatagram.WriteError(buffer, request.RequestId, GnsErrorCode.NotFound, "No record.");
                break;
            case GnsMessageType.Reverse:
                var guids = Records.Values.Where(r => r.HasAddress(request.Address!)).Select(r => r.Guid).Order().ToList();
                length = GnsDatagram.WriteGuidList(buffer, request.RequestId, guids);
                break;
            case GnsMessageType.Update:
                var incoming = request.Record!;
                if (Records.TryGetValue(incoming.Guid, out var stored) && stored.Version >= incoming.Version)
                {
                    length = GnsDatagram.WriteError(buffer, request.RequestId, GnsErrorCode.StaleVersion, "Version not higher.");
                }
                else
                {
                    Records[incoming.Guid] = incoming;
                    length = GnsDatagram.WriteUpdateAck(buffer, request.RequestId, incoming.Version, source);
                }

                break;
            case GnsMessageType.Remove:
                length = Records.TryRemove(request.Removal!.Guid, out _)
                    ? GnsDatagram.WriteRemoveAck(buffer, request.RequestId, request.Removal.Version)
                    : GnsDatagram.WriteError(buffer, request.RequestId, GnsErrorCode.NotFound, "No record.");
                break;
            case GnsMessageType.Reflect:
                // As a GNS without a second datagram port answers (docs/protocol.md, "Reflect").
                length = GnsDatagram.WriteReflectReply(buffer, request.RequestId, 0, source, 0);
                break;
            default:
                return null;
        }

        return buffer[..length];
    }

    public static byte[] RecordReply(uint requestId, GnsRecord record)
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        return buffer[..RecordReply(buffer, requestId, record)];
    }

    public static byte[] Error(uint requestId, GnsErrorCode code, string message)
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        return buffer[..GnsDatagram.WriteError(buffer, requestId, code, message)];
    }

    private static int RecordReply(byte[] buffer, uint requestId, GnsRecord record)
        => GnsDatagram.TryWriteRecord(buffer, requestId, record, out var written) ? written : throw new InvalidOperationException("Record does not fit.");

    private async Task RunAsync()
    {
        var buffer = new byte[2048];
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            var source = (IPEndPoint)received.RemoteEndPoint;
            GnsRequest request;
            try
            {
                request = GnsDatagram.ParseRequest(buffer.AsSpan(0, received.ReceivedBytes));
            }
            catch (MalformedMessageException)
            {
                continue;
            }

            Requests.Enqueue(request);
            var count = Interlocked.Increment(ref _requests);
            if (count <= DropFirst)
            {
                continue;
            }

            if (Noise is { } noise)
            {
                foreach (var datagram in noise(request))
                {
                    await _socket.SendToAsync(datagram, SocketFlags.None, source);
                }
            }

            var reply = (Responder ?? Answer)(request, source);
            if (reply is not null)
            {
                await (ReplyFromOtherPort ? _other : _socket).SendToAsync(reply, SocketFlags.None, source);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        _other.Dispose();
        try
        {
            await _loop.WithTimeout();
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
