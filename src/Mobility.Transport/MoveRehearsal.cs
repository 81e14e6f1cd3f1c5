using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;

namespace Mobility.Transport;

/// <summary>What one <see cref="MoveRehearsal"/> did: how long it took, the client's move as its timeline recorded it, and where its listener was.</summary>
public sealed record MoveRehearsalResult(TimeSpan Took, MoveRecord? Move, IPEndPoint ListenedOn)
{
    /// <summary>The rehearsal also switched to a standby path (a second loopback address; not over IPv6's one loopback address, nor with standby paths off).</summary>
    public bool StandbySwitched { get; init; }

    /// <summary>
    /// The rehearsal also moved its server and resumed on the server's call back (a second loopback address; not over
    /// IPv6's one loopback address, nor with call backs off).
    /// </summary>
    public bool CalledBack { get; init; }
}

/// <summary>
/// One move rehearsed over loopback when a host starts, so that its first real move does not run cold code. A
/// process's first move runs code that nothing has run before (the path's teardown, the supervisor's attempt, a
/// first-flight connect, the listener's Resume, the responder, the resend), and paying for that on the move itself
/// cost tens of milliseconds per step even on an idle machine and hundreds on a loaded one, where later moves of the
/// same process took under a millisecond per step (docs/evaluation.md, "Cold code on the first move"). The
/// rehearsal is a real mobile connection from the host's key to itself through a listener of its own on a loopback
/// address (it admits only the host's own GUID, and is closed when the rehearsal ends): data both ways, the client's
/// path taken away as an address event takes it (<see cref="MobileConnection.NotifyLocalAddresses"/> without its
/// address), the resume with the options real connections use (a first flight where Fast Open is on), and data
/// both ways after it, checked byte for byte; then, over IPv4, a standby switch (a second loopback address joins as a
/// standby path and the first goes), whose join and promotion no resume runs, and a server move: the listener moves to
/// the second loopback address and the server calls the client back (a first flight to a second listener of the
/// rehearsal's, the client's), whose dial, CallBack, check and resume on the called-back flow no other step runs.
/// </summary>
public static partial class MoveRehearsal
{
    /// <summary>Bytes the client sends before and again after the move (and the server each time in reply): several frames of each size a new path starts with.</summary>
    public const int Bytes = 16 * 1024;

    /// <summary>
    /// Rehearses one move on <paramref name="loopback"/> with <paramref name="key"/>: <paramref name="listenerOptions"/>
    /// (a fresh instance, set as the host's real listener's; its <see cref="MobileListenerOptions.AuthorizeClient"/> is
    /// set to admit only <paramref name="key"/>) and <paramref name="connectionOptions"/> (those of the host's real
    /// connections). Throws when the move did not resume with every byte intact within <paramref name="limit"/>
    /// (<see cref="OperationCanceledException"/> when it ran out).
    /// </summary>
    public static async Task<MoveRehearsalResult> RunAsync(HostKey key, IPAddress loopback, MobileListenerOptions listenerOptions,
        MobileConnectionOptions connectionOptions, TimeSpan limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(loopback);
        ArgumentNullException.ThrowIfNull(listenerOptions);
        ArgumentNullException.ThrowIfNull(connectionOptions);
        var time = connectionOptions.TimeProvider;
        var started = time.GetTimestamp();
        using var deadline = new CancellationTokenSource(limit, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var ct = linked.Token;
        var self = key.Guid;
        listenerOptions.AuthorizeClient = guid => guid == self;
        // The client's own listener, as a daemon's: where its server calls it back. It admits no new connection.
        var clientListener = new MobileListener(key, new MobileListenerOptions
        {
            LoggerFactory = listenerOptions.LoggerFactory,
            TimeProvider = listenerOptions.TimeProvider,
            CallBack = listenerOptions.CallBack,
            FastOpen = listenerOptions.FastOpen,
            FastOpenQueue = listenerOptions.FastOpenQueue,
            HandshakeTimeout = listenerOptions.HandshakeTimeout,
            ListenerFactory = listenerOptions.ListenerFactory,
            AuthorizeClient = _ => false,
        });
        await using var clientListenerScope = clientListener.ConfigureAwait(false);
        clientListener.Start(new IPEndPoint(loopback, 0));
        // The server's connections find the client's listener as a daemon's find the client's record.
        listenerOptions.PunchTargetLocator = new FixedLocator(self, clientListener.LocalEndPoint);
        var listener = new MobileListener(key, listenerOptions);
        await using var listenerScope = listener.ConfigureAwait(false);
        listener.Start(new IPEndPoint(loopback, 0));
        var locator = new FixedLocator(self, listener.LocalEndPoint);
        var connector = new MobileConnector(key, connectionOptions);
        clientListener.AcceptCallBacksFor(connector);
        // As the daemon's connections: the host's addresses known, the peer found (and looked up again) through a locator.
        connector.NotifyLocalAddresses([loopback]);
        var accepting = listener.AcceptAsync(ct).AsTask();
        var client = await connector.ConnectAsync(self, locator, ct).ConfigureAwait(false);
        await using var clientScope = client.ConfigureAwait(false);
        var server = await accepting.ConfigureAwait(false);
        await using var serverScope = server.ConfigureAwait(false);

        await ExchangeAsync(client, server, 0, ct).ConfigureAwait(false);

        // The address event of a move: the address the client's path runs over is no longer the host's.
        connector.NotifyLocalAddresses([]);
        await ExchangeAsync(client, server, 1, ct).ConfigureAwait(false);
        // The move the address event opened (a raced Resume answered late can open another record after it).
        var move = client.Moves.LastOrDefault(m => m.Events.Count > 0 && m.Events[0].Kind == MoveEventKind.AddressEvent);
        if (move?.ResumedAfter is null)
        {
            throw new InvalidOperationException("The rehearsed move did not resume: " + (client.Failure?.Message ?? client.State.ToString()));
        }

        var standbySwitched = await RehearseStandbySwitchAsync(connector, client, server, loopback, connectionOptions, time, ct).ConfigureAwait(false);
        var calledBack = await RehearseCallBackAsync(listener, client, server, loopback, listenerOptions, connectionOptions, ct).ConfigureAwait(false);

        client.ShutdownWrite();
        server.ShutdownWrite();
        await Task.WhenAll(client.CloseAsync(ct), server.CloseAsync(ct)).ConfigureAwait(false);
        return new MoveRehearsalResult(time.GetElapsedTime(started), move, listener.LocalEndPoint)
        {
            StandbySwitched = standbySwitched,
            CalledBack = calledBack,
        };
    }

    /// <summary>
    /// A server move, as a server host's runs it: the listener moves to a second loopback address (dropping the server's
    /// path over the first), and the server calls the client back from there, a first flight from the listener's port
    /// to the client's listener; the client checks the CallBack and resumes on that flow, the server checks the Resume
    /// and switches; then data both ways. The client's own resumes go to the listener's old endpoint (its locator never
    /// learns the new one) and are refused, so only the call back can resume it. None of that is a resume's code, and
    /// cold it cost a first real server move 11-31 ms before the CallBack left and its one way 4-17 ms over the path's
    /// (docs/evaluation.md). False when there is no second loopback address or call backs are off.
    /// </summary>
    private static async Task<bool> RehearseCallBackAsync(MobileListener listener, MobileConnection client, MobileConnection server,
        IPAddress loopback, MobileListenerOptions listenerOptions, MobileConnectionOptions connectionOptions, CancellationToken ct)
    {
        if (!listenerOptions.CallBack || !connectionOptions.CallBack || SecondLoopback(loopback) is not { } second
            || !listener.LocalEndPoint.Address.Equals(loopback))
        {
            return false;
        }

        await listener.RebindAsync(new IPEndPoint(second, listener.LocalEndPoint.Port)).ConfigureAwait(false);
        await ExchangeAsync(client, server, 3, ct).ConfigureAwait(false);
        return server.CallBackCounts.Sent > 0 && client.CallBackCounts.Accepted > 0;
    }

    /// <summary>
    /// A standby switch, as a multihomed host's loss of the address in use runs it: a second loopback address joins as a
    /// standby path, the first goes, the client switches at once and the server promotes the standby on the client's
    /// first frame there; then data both ways. None of that is a resume's code (the join, both ends' promotion, the
    /// switch's resend), and cold it cost a first real switch 10-20 ms at the server alone (docs/evaluation.md,
    /// "Standby switch at the first window"). False when there is no second loopback address or standby paths are off.
    /// </summary>
    private static async Task<bool> RehearseStandbySwitchAsync(MobileConnector connector, MobileConnection client, MobileConnection server,
        IPAddress loopback, MobileConnectionOptions connectionOptions, TimeProvider time, CancellationToken ct)
    {
        if (connectionOptions.MaxStandbyPaths == 0 || SecondLoopback(loopback) is not { } second || client.LocalEndPoint?.Address is not { } used)
        {
            return false;
        }

        used = used.IsIPv4MappedToIPv6 ? used.MapToIPv4() : used;
        connector.NotifyLocalAddresses([used, second]);
        while (!client.StandbyPaths.Any(p => p.Established) || server.StandbyPaths.Length == 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(2), time, ct).ConfigureAwait(false);
        }

        connector.NotifyLocalAddresses([second]);
        await ExchangeAsync(client, server, 2, ct).ConfigureAwait(false);
        return client.Statistics.StandbySwitches > 0 && server.Statistics.StandbySwitches > 0;
    }

    /// <summary>Another address of IPv4's loopback network (all of 127.0.0.0/8 is local on Linux); null for IPv6 (one loopback address).</summary>
    private static IPAddress? SecondLoopback(IPAddress loopback)
    {
        if (loopback.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || !IPAddress.IsLoopback(loopback))
        {
            return null;
        }

        var bytes = loopback.GetAddressBytes();
        bytes[3] = (byte)(bytes[3] == 2 ? 3 : 2);
        return new IPAddress(bytes);
    }

    /// <summary>The rehearsal's peer: always at the listener's endpoint (never pushes).</summary>
    private sealed class FixedLocator(HostGuid guid, IPEndPoint endpoint) : IPeerLocator
    {
        public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged
        {
            add { }
            remove { }
        }

        public ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid target, CancellationToken cancellationToken)
            => ValueTask.FromResult<IReadOnlyList<IPEndPoint>>(target == guid ? [endpoint] : []);
    }

    /// <summary>The client sends <see cref="Bytes"/> of round <paramref name="round"/>, the server reads them and sends them back; both checked.</summary>
    private static async Task ExchangeAsync(MobileConnection client, MobileConnection server, int round, CancellationToken ct)
    {
        var sent = new byte[Bytes];
        for (var i = 0; i < sent.Length; i++)
        {
            sent[i] = (byte)((i * 31) + round);
        }

        var writing = client.WriteAsync(sent, ct).AsTask();
        var atServer = await ReadExactlyAsync(server, Bytes, ct).ConfigureAwait(false);
        await writing.ConfigureAwait(false);
        await server.WriteAsync(atServer, ct).ConfigureAwait(false);
        var back = await ReadExactlyAsync(client, Bytes, ct).ConfigureAwait(false);
        if (!sent.AsSpan().SequenceEqual(atServer) || !sent.AsSpan().SequenceEqual(back))
        {
            throw new InvalidOperationException($"The rehearsal's bytes of round {round} arrived changed.");
        }
    }

    private static async Task<byte[]> ReadExactlyAsync(MobileConnection connection, int count, CancellationToken ct)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await connection.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new InvalidOperationException($"The rehearsal's connection ended after {read} of {count} bytes.");
            }

            read += n;
        }

        return buffer;
    }

    /// <summary>Log messages of a rehearsal (for its callers: the daemon logs the outcome).</summary>
    public static partial class Log
    {
        [LoggerMessage(9310, LogLevel.Information, "Rehearsed a move over {Loopback} in {Ms:0.0} ms (resumed {ResumedMs:0.0} ms after its address event; standby switch rehearsed: {StandbySwitched}; call back rehearsed: {CalledBack}): the first real move runs warm code.")]
        public static partial void Rehearsed(ILogger logger, IPAddress loopback, double ms, double resumedMs, bool standbySwitched, bool calledBack);

        [LoggerMessage(9311, LogLevel.Warning, "Could not rehearse a move over {Loopback}: {Reason}. The first real move runs cold code (slower).")]
        public static partial void Failed(ILogger logger, IPAddress loopback, string reason);
    }
}
