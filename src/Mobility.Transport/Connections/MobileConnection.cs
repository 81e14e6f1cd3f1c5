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
public readonly record struct MobileConnectionStatistics(
    long BytesSent,
    long BytesReceived,
    long BytesResent,
    long DuplicateBytesReceived,
    int Moves,
    int ResumeAttempts,
    int ResumesRejected,
    TimeSpan LastStall,
    TimeSpan? LastRtt,
    long PingsSent);

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
public sealed partial class MobileConnection : IAsyncDisposable, ISupervisedConnection
{
    /// <summary>Frames are gathered into one write of up to this many bytes (fewer syscalls in bulk).</summary>
    private const int OutputBatchSize = 192 * 1024;

    /// <summary>Output buffer of a path with nothing but handshake and control frames to send.</summary>
    private const int SmallOutputSize = 4096;

    /// <summary>
    /// How long an abort or dispose waits (on the injected clock) for the RESET to be written before
    /// it closes the flow anyway: a RESET stuck behind a full socket buffer is not worth more.
    /// </summary>
    internal static readonly TimeSpan ResetFlushTimeout = TimeSpan.FromMilliseconds(100);

    private readonly bool _isClient;
    private readonly Lock _lock = new();
    private readonly MobileTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // Each path's send loop seals with its own FrameProtector made from _sealKey (the frame counters
    // are assigned under _lock, so a nonce is never used twice; the AEAD runs outside the lock), and
    // each path's receive loop opens with its own made from _openKey (the AEAD context is not
    // thread-safe, and a retired path's loop may still be busy while the next path's loop starts).
    private readonly byte[] _sealKey;
    private readonly byte[] _openKey;
    private readonly byte[] _resumeKey;
    private readonly CancellationTokenSource _closed = new();
    private readonly AsyncPulse _readable = new();
    private readonly AsyncPulse _writable = new();
    private readonly AsyncPulse _stateChanged = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly ITimer _timer;
    private readonly MobileStream _stream;
    private readonly Action<MobileConnection>? _onEnded;

    // The connection's state, guarded by _lock; each piece is a type with one job.
    private readonly SendState _send;
    private readonly ReceiveState _receive;
    private readonly KeepAlivePolicy _keepAlive;
    private readonly PathSet _paths = new();
    private readonly ConnectionStatistics _stats = new();
    private ulong _sendCounter;
    private long _tickDueAt;
    private long? _pathLostAt;
    private MobileConnectionState _state = MobileConnectionState.Connected;
    private Exception? _failure;
    private bool _completed;

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
        IsEncrypted = encrypt;
        _send = new SendState(Math.Min(options.MaxUnackedBytes, peerReceiveWindow));
        _receive = new ReceiveState(options.ReceiveWindow);
        _onEnded = onEnded;
        _stream = new MobileStream(this);
        var now = _time.GetTimestamp();
        _keepAlive = new KeepAlivePolicy(isClient, options, _time, now);
        // One-shot, re-armed by every tick: every KeepAliveInterval / 2 while active, at the next
        // idle keepalive or deadline while idle (see OnTick).
        _tickDueAt = now + ToTicks(_keepAlive.FastTick);
        _timer = _time.CreateTimer(static s => ((MobileConnection)s!).OnTick(), this, _keepAlive.FastTick, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Raised on path changes, resumes and the end of the connection (on a transport thread; keep handlers short).</summary>
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

    public MobileConnectionState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>Local endpoint of the active path (null while pathless).</summary>
    public IPEndPoint? LocalEndPoint
    {
        get
        {
            lock (_lock)
            {
                return _paths.Active?.Flow.LocalEndPoint;
            }
        }
    }

    /// <summary>Remote endpoint of the active path (null while pathless).</summary>
    public IPEndPoint? RemoteEndPoint
    {
        get
        {
            lock (_lock)
            {
                return _paths.Active?.Flow.RemoteEndPoint;
            }
        }
    }

    /// <summary>The first reason the connection failed, or null.</summary>
    public Exception? Failure
    {
        get
        {
            lock (_lock)
            {
                return _failure;
            }
        }
    }

    /// <summary>A token cancelled when the connection fails or is disposed.</summary>
    public CancellationToken Closed => _closed.Token;

    public MobileConnectionStatistics Statistics
    {
        get
        {
            lock (_lock)
            {
                return _stats.Snapshot();
            }
        }
    }

    /// <summary>Copies data into the send buffer; waits while the unacknowledged window is full.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (!data.IsEmpty)
            {
                Task wait;
                lock (_lock)
                {
                    ThrowIfFailed();
                    if (_send.IsShutDown)
                    {
                        throw new InvalidOperationException("Writes were shut down on this connection.");
                    }

                    if (_send.Space > 0)
                    {
                        data = data[_send.Append(data.Span)..];
                        MarkActiveLocked();
                        _paths.Active?.Wake.Set();
                        continue;
                    }

                    wait = _writable.Task;
                }

                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
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
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_receive.Buffered > 0 && buffer.IsEmpty)
                {
                    return 0;
                }

                if (_receive.Buffered > 0)
                {
                    var n = _receive.Read(buffer.Span);
                    // Idle (no timer tick will flush it): a read that drains the buffer ACKs at once,
                    // in case the peer waits for window.
                    if (_receive.Consumed - _receive.AckedConsumed >= _receive.AckEvery || (!_keepAlive.IsFast && _receive.Buffered == 0))
                    {
                        _paths.Active?.Wake.Set();
                    }

                    return n;
                }

                if (_receive.AtEnd)
                {
                    return 0;
                }

                ThrowIfFailed();
                wait = _readable.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Half-close: sends FIN after all written data. Reads continue until the peer closes its side.</summary>
    public void ShutdownWrite()
    {
        lock (_lock)
        {
            ThrowIfFailed();
            if (_send.ShutDown())
            {
                MarkActiveLocked();
                _paths.Active?.Wake.Set();
            }
        }
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
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_completed)
                {
                    return;
                }

                ThrowIfFailed();
                wait = _stateChanged.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until the connection completes or fails (for servers that let the client drive the close).</summary>
    public async Task WaitForEndAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_completed || _failure is not null)
                {
                    return;
                }

                wait = _stateChanged.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Aborts the connection at once: pending and future reads and writes fail with
    /// <paramref name="reason"/> (unless the connection had already failed: the first reason is
    /// kept), and a RESET goes to the peer on the active path, flushed in the background within
    /// <see cref="ResetFlushTimeout"/> (<see cref="DisposeAsync"/> awaits it).
    /// </summary>
    public void Abort(string reason = "aborted by the application")
        => Fail(new MobileConnectionException(MobileConnectionError.Aborted, reason), resetCode: 1);

    /// <summary>
    /// Releases the connection. After <see cref="CloseAsync"/> (or a failure) this only frees
    /// memory; otherwise it resets the peer first. Returns once every path's loops have ended, the
    /// RESET has been written (or <see cref="ResetFlushTimeout"/> passed) and the sockets are closed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Fail(new MobileConnectionException(MobileConnectionError.Aborted, "The connection was disposed."), resetCode: 1);
        Task[] loops;
        lock (_lock)
        {
            loops = [.. _paths.Retiring(), _supervisor?.Completion ?? Task.CompletedTask];
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
        await _timer.DisposeAsync().ConfigureAwait(false);
        lock (_lock)
        {
            _send.Clear();
            _receive.Clear();
        }

        System.Security.Cryptography.CryptographicOperations.ZeroMemory(_sealKey);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(_openKey);
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw _failure as MobileConnectionException
                ?? new MobileConnectionException(MobileConnectionError.Aborted, _failure.Message, _failure);
        }
    }

    /// <summary>
    /// Fails the connection with the first reason; later reasons are ignored. With
    /// <paramref name="resetCode"/>, the active path first carries a RESET to the peer.
    /// </summary>
    internal void Fail(Exception reason, uint? resetCode = null)
    {
        lock (_lock)
        {
            if (_failure is not null)
            {
                return;
            }

            if (_completed)
            {
                // A completed connection keeps its data readable; only release the path.
                if (_paths.Active is { } active)
                {
                    _paths.Deactivate(active);
                }

                return;
            }

            _failure = reason;
            _state = MobileConnectionState.Failed;
            if (resetCode is { } code)
            {
                _paths.DeactivateWithReset(code, ResetFlushTimeout, _time);
            }
            else if (_paths.Active is { } active)
            {
                _paths.Deactivate(active);
            }

            _readable.Pulse();
            _writable.Pulse();
            _stateChanged.Pulse();
        }

        TransportLog.ConnectionFailed(_logger, Token, reason.Message);
        _closed.Cancel();
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        OnEndedCore();
        Raise(MobileConnectionEventKind.Failed, null, null, reason.Message, TimeSpan.Zero);
    }

    private void Complete()
    {
        lock (_lock)
        {
            if (_completed || _failure is not null)
            {
                return;
            }

            _completed = true;
            _state = MobileConnectionState.Completed;
            if (_paths.Active is { } active)
            {
                _paths.Deactivate(active);
            }

            _readable.Pulse();
            _writable.Pulse();
            _stateChanged.Pulse();
        }

        TransportLog.ConnectionCompleted(_logger, Token);
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _closed.Cancel();
        OnEndedCore();
        Raise(MobileConnectionEventKind.Completed, null, null, null, TimeSpan.Zero);
    }

    private void OnEndedCore()
    {
        UnsubscribeLocator();
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
