using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

/// <summary>State of a mobile connection.</summary>
public enum MobileConnectionState
{
    /// <summary>A flow is up (or being resumed optimistically) and frames flow.</summary>
    Connected,

    /// <summary>No working flow: the client is reconnecting, the server waits for the client to resume.</summary>
    Pathless,

    /// <summary>Both directions were closed and acknowledged.</summary>
    Completed,

    /// <summary>The connection failed; reads and writes throw <see cref="MobileConnectionException"/>.</summary>
    Failed,
}

/// <summary>Counters for diagnostics.</summary>
public readonly partial record struct MobileConnectionStatistics(
    long BytesSent,
    long BytesReceived,
    long BytesResent,
    long DuplicateBytesReceived,
    int Moves,
    int ResumeAttempts,
    int ResumesRejected,
    TimeSpan LastStall,
    TimeSpan? LastRtt,
    long PingsSent,
    int StandbySwitches = 0);

/// <summary>What happened to a connection's path.</summary>
public enum MobileConnectionEventKind
{
    /// <summary>Client: a new TCP flow is up (before Resume is answered).</summary>
    FlowConnected,

    /// <summary>A resumed flow carries the connection.</summary>
    Resumed,

    /// <summary>The current flow died or was abandoned.</summary>
    PathLost,

    /// <summary>A Resume for this connection was refused (bad MAC, replayed counter).</summary>
    ResumeRejected,

    Completed,

    Failed,
}

public sealed class MobileConnectionEventArgs : EventArgs
{
    internal MobileConnectionEventArgs(MobileConnectionEventKind kind, long timestamp, IPEndPoint? local, IPEndPoint? remote, string? reason, TimeSpan stall)
    {
        Kind = kind;
        Timestamp = timestamp;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        Reason = reason;
        Stall = stall;
    }

    public MobileConnectionEventKind Kind { get; }

    /// <summary>From the connection's <see cref="TimeProvider.GetTimestamp"/>.</summary>
    public long Timestamp { get; }

    public IPEndPoint? LocalEndPoint { get; }

    public IPEndPoint? RemoteEndPoint { get; }

    public string? Reason { get; }

    /// <summary>For <see cref="MobileConnectionEventKind.Resumed"/>: time without a working path.</summary>
    public TimeSpan Stall { get; }
}

/// <summary>
/// A connection identified by (client GUID, server GUID, token) that survives address changes of
/// either end. Bytes are delivered in order, once, across any number of flows. Read and write
/// through <see cref="Stream"/>; close with <see cref="CloseAsync"/> (graceful) or
/// <see cref="DisposeAsync"/> (graceful if already complete, otherwise a reset).
/// </summary>
/// <remarks>
/// The connection's state belongs to one loop (see MobileConnection.Loop.cs): application reads
/// and writes, frames from each path's receive loop, finished writes, timer ticks, path events and
/// shutdown are posted to it as <see cref="ConnectionEvent"/>s, and it alone changes the send and
/// receive state and the paths, and alone seals frames. There is no lock.
/// </remarks>
public sealed partial class MobileConnection : IAsyncDisposable, ISupervisedConnection
{
    /// <summary>
    /// The output buffer of a path with data to send: 256 KiB, a size class of the shared array pool,
    /// so the rental is not rounded up to the next class (512 KiB).
    /// </summary>
    internal const int OutputBufferSize = 256 * 1024;

    /// <summary>
    /// Frames are gathered into one write of up to this many bytes (fewer syscalls in bulk): the last
    /// DATA frame starts below it and a FIN may follow, so it leaves two whole frames of room in
    /// <see cref="OutputBufferSize"/> (192 KiB less 74 bytes).
    /// </summary>
    internal const int OutputBatchSize = OutputBufferSize - (2 * TransportConstants.MaxFrameWireSize);

    /// <summary>
    /// The first write on a flow opened for a first flight to an IPv4 address, at most: what Linux puts in a SYN
    /// without a cookie, one segment at MTU 1500 less the largest TCP options (1,460 - 40). A route with a smaller
    /// MTU makes the kernel put less in the SYN and send the rest after the handshake; the last frame of the write
    /// then waits a round trip, never lost (docs/transport.md, "The first flight").
    /// </summary>
    internal const int FirstFlightBytes = 1420;

    /// <summary>The same over IPv6 (a 20-byte larger header): 1,400 bytes.</summary>
    internal const int FirstFlightBytesIpv6 = 1400;

    /// <summary>
    /// Linux's initial congestion window (RFC 6928: ten segments of 1,448 bytes): what a new flow sends in
    /// the round trip after its handshake. A resume that may resend more than this of bytes the server
    /// already holds sends only its SYN's worth before the ResumeAck (see <c>FirstFlightDataRoom</c>).
    /// </summary>
    internal const int InitialWindowBytes = 10 * 1448;

    /// <summary>The largest DATA payload of a path's first frame (see <c>FramePayloadLimit</c>): one frame per segment.</summary>
    internal const int FirstFramePayload = 1024;

    /// <summary>Output buffer of a path with nothing but handshake and control frames to send.</summary>
    private const int SmallOutputSize = 4096;

    /// <summary>
    /// How long an abort or dispose waits (on the injected clock) for the RESET to be written before
    /// it closes the flow anyway: a RESET stuck behind a full socket buffer is not worth more.
    /// </summary>
    internal static readonly TimeSpan ResetFlushTimeout = TimeSpan.FromMilliseconds(100);

    private readonly bool _isClient;
    private readonly MobileTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // The loop seals with _sealer (it is the only sealer); each path's receive loop opens with its
    // own FrameProtector made from _openKey (the AEAD context is not thread-safe, and a retired
    // path's receive loop may still be busy while the next path's starts).
    private readonly byte[] _sealKey;
    private readonly byte[] _openKey;
    private readonly byte[] _resumeKey;
    private readonly FrameProtector _sealer;
    private readonly CancellationTokenSource _closed = new();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly ITimer _timer;
    private readonly MobileStream _stream;
    private readonly Action<MobileConnection>? _onEnded;

    // The connection's state, owned by the loop; each piece is a type with one job.
    private readonly SendState _send;
    private readonly ReceiveState _receive;
    private readonly KeepAlivePolicy _keepAlive;
    private readonly PathSet _paths = new();
    private readonly ConnectionStatistics _stats = new();
    private ulong _sendCounter;
    private long _tickDueAt;
    private long? _pathLostAt;

    // Client: the stream offset up to which the lost active path's bytes left this host (its flow's unsent bytes told), where
    // the next resume's first flight starts; null when unknown, after a resume was answered, or when a CallBack named the server's.
    private long? _resendFrom;

    // Client, on the loop: the server's last CANDIDATES had FirstFlightGapsFlag (it drops a first flight's gap): only then
    // does a first flight start at _resendFrom, beyond the last ACK (a server of an earlier release fails on the gap).
    private bool _peerDropsFirstFlightGaps;

    // Client, on the loop: the server's last CANDIDATES had StandbyGapsFlag: a switch to a standby after this host's address
    // went resends from where the lost path's bytes stopped leaving the host (the server drops a gap and its first ACK rewinds).
    private bool _peerDropsStandbyGaps;
    private bool _completed;
    private readonly MoveTimeline _timeline;
    private bool _awaitingFirstByte; // on the loop: a resume completed, its first delivered byte is not recorded yet

    // Published by the loop for readers on other threads (State, Failure, endpoints, statistics).
    private volatile MobileConnectionState _publishedState = MobileConnectionState.Connected;
    private Exception? _failure; // set once (Interlocked), by Fail or the loop
    private volatile ConnectionPath? _publishedPath;
    private long _publishedPathLostAt; // 0: not pathless
    private long _publishedAvailable; // in-order bytes not yet read, as of the last read served or batch of events
    private volatile object? _publishedStats; // a boxed MobileConnectionStatistics, replaced whole

    internal MobileConnection(
        bool isClient,
        HostGuid localGuid,
        HostGuid remoteGuid,
        UInt128 token,
        SessionSecrets secrets,
        bool encrypt,
        uint peerReceiveWindow,
        MobileTransportOptions options,
        Action<MobileConnection>? onEnded)
    {
        _isClient = isClient;
        LocalGuid = localGuid;
        RemoteGuid = remoteGuid;
        Token = token;
        ClientGuid = isClient ? localGuid : remoteGuid;
        ServerGuid = isClient ? remoteGuid : localGuid;
        _options = options;
        _time = options.TimeProvider;
        _logger = options.LoggerFactory.CreateLogger<MobileConnection>();
        _sealKey = (byte[])(isClient ? secrets.ClientToServerKey : secrets.ServerToClientKey).Clone();
        _openKey = (byte[])(isClient ? secrets.ServerToClientKey : secrets.ClientToServerKey).Clone();
        _resumeKey = (byte[])secrets.ResumeKey.Clone();
        _responder = new ResumeResponder(_resumeKey, token);
        _timeline = new MoveTimeline(_time, _logger, token);
        IsEncrypted = encrypt;
        _sealer = new FrameProtector(_sealKey, encrypt);
        _send = new SendState(Math.Min(options.MaxUnackedBytes, peerReceiveWindow));
        _receive = new ReceiveState(options.ReceiveWindow);
        _onEnded = onEnded;
        _stream = new MobileStream(this);
        var now = _time.GetTimestamp();
        _keepAlive = new KeepAlivePolicy(isClient, options, _time, now);
        // One-shot, re-armed by every tick: every KeepAliveInterval / 2 while active, at the next
        // idle keepalive or deadline while idle (see OnTick).
        _tickDueAt = now + ToTicks(_keepAlive.FastTick);
        _timer = _time.CreateTimer(static s => ((MobileConnection)s!).Post(TimerTick.Instance), this, _keepAlive.FastTick, Timeout.InfiniteTimeSpan);
        _loop = Task.Run(RunLoopAsync);
    }

    /// <summary>Raised on path changes, resumes and the end of the connection (on the connection's loop; keep handlers short and never wait on the connection in them).</summary>
    public event EventHandler<MobileConnectionEventArgs>? Diagnostic;

    public HostGuid LocalGuid { get; }

    public HostGuid RemoteGuid { get; }

    public HostGuid ClientGuid { get; }

    public HostGuid ServerGuid { get; }

    /// <summary>The 128-bit token chosen by the client; with the two GUIDs it names the connection.</summary>
    public UInt128 Token { get; }

    public bool IsClient => _isClient;

    public bool IsEncrypted { get; }

    /// <summary>The byte stream of the connection.</summary>
    public Stream Stream => _stream;

    /// <summary>The state as the connection's loop last published it.</summary>
    public MobileConnectionState State => _publishedState;

    /// <summary>Local endpoint of the active path (null while pathless).</summary>
    public IPEndPoint? LocalEndPoint => _publishedPath?.Flow.LocalEndPoint;

    /// <summary>Remote endpoint of the active path (null while pathless).</summary>
    public IPEndPoint? RemoteEndPoint => _publishedPath?.Flow.RemoteEndPoint;

    /// <summary>The first reason the connection failed, or null.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>A token cancelled when the connection fails or is disposed.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>
    /// The timeline of the connection's last moves (at most <see cref="MoveTimeline.MaxMoves"/>, oldest
    /// first): address events, dead paths, pushes, lookups, connects, Resume and its answer, first data.
    /// </summary>
    public IReadOnlyList<MoveRecord> Moves => _timeline.Snapshot();

    /// <summary>
    /// Bytes received in order and not read yet, as the loop published them when it last served a read or finished a
    /// batch of events: when it is above 0, a read returns at once. Only grows between reads, so a single reader (a relay)
    /// can use it to keep reading into the buffer it holds instead of waiting with a zero-byte read first.
    /// </summary>
    public long Available => Volatile.Read(ref _publishedAvailable);

    /// <summary>The counters as the connection's loop last published them (after each batch of events).</summary>
    public MobileConnectionStatistics Statistics => (_publishedStats is MobileConnectionStatistics published ? published : default) with { Datagrams = DatagramSnapshot() };

    /// <summary>Hands data to the connection's loop, which copies it into the send buffer; waits while the unacknowledged window is full.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            if (data.IsEmpty)
            {
                return;
            }

            var write = new AppWrite(data);
            await RunOperationAsync(write, write.Done.Task, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>
    /// Reads in-order bytes; returns 0 once the peer shut down its side and everything was read.
    /// An empty <paramref name="buffer"/> waits until bytes (or the end) are there without taking any
    /// (a zero-byte read, as on a socket), so that an idle relay need not hold a buffer while it waits.
    /// </summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = new AppRead(buffer);
        await RunOperationAsync(read, read.Done.Task, cancellationToken).ConfigureAwait(false);
        return read.Done.Task.Result;
    }

    /// <summary>
    /// Posts <paramref name="operation"/> and waits for the loop to finish it. Cancellation is
    /// handed to the loop too, so the loop never touches the caller's buffer after this returns.
    /// </summary>
    private async Task RunOperationAsync(ConnectionEvent operation, Task done, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static (s, ct) => { var (c, op) = ((MobileConnection, ConnectionEvent))s!; c.Post(new AppCancel(op, ct)); }, (this, operation))
            : default;
        if (!Post(operation))
        {
            ThrowIfFailed();
            throw new ObjectDisposedException(nameof(MobileConnection));
        }

        await done.ConfigureAwait(false);
    }

    /// <summary>Half-close: sends FIN after all written data. Reads continue until the peer closes its side.</summary>
    public void ShutdownWrite()
    {
        ThrowIfFailed();
        Post(new AppShutdownWrite());
    }

    /// <summary>
    /// Graceful close: shuts down writes, then waits until the peer acknowledged our FIN, its own
    /// FIN arrived, and (client) the server confirmed by closing the flow. Moves during the close
    /// are handled like any other (FIN is retransmitted on the resumed path). Unread received data
    /// is kept for reading.
    /// </summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        ShutdownWrite();
        await _ended.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        ThrowIfFailed();
    }

    /// <summary>Waits until the connection completes or fails (for servers that let the client drive the close).</summary>
    public Task WaitForEndAsync(CancellationToken cancellationToken = default) => _ended.Task.WaitAsync(cancellationToken);

    /// <summary>
    /// Aborts the connection: pending and future reads and writes fail with <paramref name="reason"/>
    /// (unless the connection had already failed: the first reason is kept), and a RESET goes to the
    /// peer on the active path, flushed by the loop within <see cref="ResetFlushTimeout"/>
    /// (<see cref="DisposeAsync"/> awaits it).
    /// </summary>
    public void Abort(string reason = "aborted by the application")
        => Fail(new MobileConnectionException(MobileConnectionError.Aborted, reason), resetCode: 1);

    /// <summary>
    /// Releases the connection. After <see cref="CloseAsync"/> (or a failure) this only frees
    /// memory; otherwise it resets the peer first. Returns once every path's loops have ended, the
    /// RESET has been written (or <see cref="ResetFlushTimeout"/> passed), the sockets are closed and
    /// the connection's loop has ended.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Fail(new MobileConnectionException(MobileConnectionError.Aborted, "The connection was disposed."), resetCode: 1);
        var drain = new DrainRequested();
        if (Post(drain))
        {
            var loops = await drain.Answer.Task.ConfigureAwait(false);
            await Task.WhenAll(loops).ConfigureAwait(false);
            Post(new LoopShutdown());
        }

        await _loop.ConfigureAwait(false);
        ClearDatagrams();
        await _timer.DisposeAsync().ConfigureAwait(false);
        _sealer.Dispose();
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(_sealKey);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(_openKey);
    }

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            throw AsConnectionException(failure);
        }
    }

    private static MobileConnectionException AsConnectionException(Exception failure)
        => failure as MobileConnectionException
            ?? new MobileConnectionException(MobileConnectionError.Aborted, failure.Message, failure);

    /// <summary>
    /// Fails the connection with the first reason; later reasons are ignored. With
    /// <paramref name="resetCode"/>, the active path first carries a RESET to the peer. Handed to the loop.
    /// </summary>
    /// <remarks>
    /// The first reason is recorded here at once (so <see cref="State"/>, <see cref="Failure"/>,
    /// <see cref="Closed"/> and new reads and writes see it when <see cref="Abort"/> returns); the
    /// loop then fails parked operations, drops the path and writes the RESET.
    /// </remarks>
    internal void Fail(Exception reason, uint? resetCode = null)
    {
        if (_publishedState != MobileConnectionState.Completed
            && Interlocked.CompareExchange(ref _failure, reason, null) is null)
        {
            _publishedState = MobileConnectionState.Failed;
            _closed.Cancel();
        }

        Post(new FailRequested(reason, resetCode));
    }

    private void OnEndedCore()
    {
        UnsubscribeLocator();
        CompleteDatagrams();
        _onEnded?.Invoke(this);
    }

    private void Raise(MobileConnectionEventKind kind, IPEndPoint? local, IPEndPoint? remote, string? reason, TimeSpan stall)
    {
        var handler = Diagnostic;
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(this, new MobileConnectionEventArgs(kind, _time.GetTimestamp(), local, remote, reason, stall));
        }
#pragma warning disable CA1031 // A diagnostics handler must not be able to break the transport's loops.
        catch (Exception e)
#pragma warning restore CA1031
        {
            TransportLog.DiagnosticHandlerFailed(_logger, e);
        }
    }

    public override string ToString() => $"mobile {ClientGuid.ToShortString()}->{ServerGuid.ToShortString()} token {Token:x32}";
}
