using System.Diagnostics;
using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Cli.Demo;

/// <summary>
/// One move of the demo and what was measured about it. Times are Stopwatch timestamps; the
/// properties in milliseconds count from <see cref="StartedAt"/>, the instant before the first socket
/// was touched.
/// </summary>
public sealed class DemoMove(int number, IReadOnlyList<string> who, long startedAt, IPAddress clientAfter, IPAddress serverAfter)
{
    private readonly TaskCompletionSource _firstByte = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _publishedAt;
    private long _pushedAt;
    private long _resumedAt;
    private long _firstByteAt;
    private long _gapTicks;
    private long _resumeOffset = long.MaxValue;
    private (IPEndPoint Client, IPEndPoint Server)? _resumedPath;

    public int Number { get; } = number;

    /// <summary>The hosts that move ("alice", "bob", or both).</summary>
    public IReadOnlyList<string> Who { get; } = who;

    public long StartedAt { get; } = startedAt;

    /// <summary>Where the client (alice) and the server (bob) are after the move: a resume counts only on this path.</summary>
    public IPAddress ClientAfter { get; } = clientAfter;

    public IPAddress ServerAfter { get; } = serverAfter;

    /// <summary>The hosts' moves, set once their sockets moved.</summary>
    public IReadOnlyList<HostMove> Hosts { get; set; } = [];

    /// <summary>Completes at the first byte the receiver reads over the new path.</summary>
    public Task FirstByte => _firstByte.Task;

    public bool Resumed => _firstByte.Task.IsCompletedSuccessfully;

    /// <summary>Move to the first byte read by the receiving application over the new path.</summary>
    public double? StallMs => Ms(ref _firstByteAt);

    /// <summary>The receiver's silence around the move: from its last read before the resumed path delivered to the first read after.</summary>
    public double? GapMs => Interlocked.Read(ref _gapTicks) is var g and > 0 ? g * 1000.0 / Stopwatch.Frequency : null;

    /// <summary>Move to the new record(s) being stored in the GNS (acknowledged to the publisher).</summary>
    public double? PublishedMs => Ms(ref _publishedAt);

    /// <summary>Move to alice's GNS watch pushing bob's new endpoint (only when bob moved).</summary>
    public double? PushedMs => Ms(ref _pushedAt);

    /// <summary>Move to the server accepting the Resume on the new path.</summary>
    public double? ResumedMs => Ms(ref _resumedAt);

    /// <summary>The flow the connection resumed on, as the server saw it.</summary>
    public (IPEndPoint Client, IPEndPoint Server)? ResumedPath
    {
        get
        {
            lock (_firstByte)
            {
                return _resumedPath;
            }
        }
    }

    /// <summary>Whether bob moved (so alice had to learn his new address from the GNS).</summary>
    public bool ServerMoved => Who.Contains(DemoRun.ServerName);

    public void SetPublished(long at) => Interlocked.CompareExchange(ref _publishedAt, at, 0);

    /// <summary>
    /// The transport's diagnostic on the server's connection: a Resume over the post-move path was
    /// accepted. <paramref name="receivedOffset"/> is what the connection had received in order by then
    /// (read just after the event, so if anything a little high): bytes beyond it came over the new path.
    /// </summary>
    public void OnDiagnostic(MobileConnectionEventArgs e, long receivedOffset)
    {
        if (e.Kind == MobileConnectionEventKind.Resumed && e.Timestamp >= StartedAt
            && e.LocalEndPoint is { } server && server.Address.Equals(ServerAfter)
            && e.RemoteEndPoint is { } client && client.Address.Equals(ClientAfter))
        {
            lock (_firstByte)
            {
                if (_resumedPath is not null)
                {
                    return;
                }

                _resumedPath = (client, server);
            }

            Interlocked.Exchange(ref _resumeOffset, receivedOffset);
            // Set last: a read that sees it finds the offset set.
            Interlocked.Exchange(ref _resumedAt, e.Timestamp);
        }
    }

    /// <summary>alice's locator was told bob's endpoints changed (a GNS watch push).</summary>
    public void OnEndpointsChanged(HostGuid server, PeerEndpointsChangedEventArgs e, long at)
    {
        if (ServerMoved && e.Guid == server && e.Endpoints.Any(p => p.Address.Equals(ServerAfter)))
        {
            Interlocked.CompareExchange(ref _pushedAt, at, 0);
        }
    }

    /// <summary>
    /// The receiver read at <paramref name="now"/> and has read <paramref name="readTotal"/> bytes in all;
    /// its read before was at <paramref name="previous"/>. Bytes that were already buffered at the receiver
    /// when the path changed are not "after the move": only a read that reaches past the resume offset counts.
    /// </summary>
    /// <returns>True when this read is the move's first byte over the new path.</returns>
    public bool OnRead(long now, long previous, long readTotal)
    {
        if (Interlocked.Read(ref _resumedAt) == 0 || readTotal <= Interlocked.Read(ref _resumeOffset)
            || Interlocked.CompareExchange(ref _firstByteAt, now, 0) != 0)
        {
            return false;
        }

        Interlocked.Exchange(ref _gapTicks, Math.Max(1, now - previous));
        _firstByte.TrySetResult();
        return true;
    }

    private double? Ms(ref long at)
    {
        var value = Interlocked.Read(ref at);
        return value == 0 ? null : (value - StartedAt) * 1000.0 / Stopwatch.Frequency;
    }
}
