using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;
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
public sealed partial class MobileConnection : IAsyncDisposable
{
    /// <summary>Frames are gathered into one write of up to this many bytes (fewer syscalls in bulk).</summary>
    private const int OutputBatchSize = 192 * 1024;

    /// <summary>Output buffer of a flow with nothing but handshake and control frames to send.</summary>
    private const int SmallOutputSize = 4096;

    private readonly bool _isClient;
    private readonly object _lock = new();
    private readonly MobileTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    // Sealing happens under _lock (one owner); each flow's receive loop opens frames with its own
    // FrameProtector made from _openKey (the AEAD context is not thread-safe, and a retired flow's
    // loop may still be opening a frame while the new flow's loop starts).
    private readonly FrameProtector _sealer;
    private readonly byte[] _openKey;
    private readonly byte[] _resumeKey;
    private readonly SendBuffer _sendBuffer = new();
    private readonly ReceiveBuffer _receiveBuffer = new();
    private readonly long _sendLimit;
    private readonly long _receiveWindow;
    private readonly CancellationTokenSource _closed = new();
    private readonly AsyncPulse _readable = new();
    private readonly AsyncPulse _writable = new();
    private readonly AsyncPulse _stateChanged = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly ITimer _timer;
    private readonly MobileStream _stream;
    private readonly List<Task> _retiredLoops = [];
    private readonly Action<MobileConnection>? _onEnded;

    // Send direction (guarded by _lock).
    private long _written;
    private long _sendNext;
    private long _highestSent;
    private long _peerReceived;
    private long _peerConsumed;
    private long _finOffset = -1;
    private bool _finAcked;
    private ulong _sendCounter;
    private uint? _resetToSend;

    // Receive direction.
    private long _received;
    private long _consumed;
    private long _peerFin = -1;
    private ulong _receiveCounter;
    private long _ackedReceived;
    private long _ackedConsumed;

    // Keepalive policy (see OnTick).
    private long _lastDataAt;
    private bool _fastTicks = true;
    private long _tickDueAt;
    private long _pingsSent;

    // Path.
    private FlowContext? _flow;
    private long? _pathLostAt;
    private ulong _resumeCounter;
    private MobileConnectionState _state = MobileConnectionState.Connected;
    private Exception? _failure;
    private bool _completed;
    private int _flowIds;

    // Statistics.
    private long _bytesSent;
    private long _bytesReceived;
    private long _bytesResent;
    private long _duplicateBytes;
    private int _moves;
    private int _resumeAttempts;
    private int _resumesRejected;
    private TimeSpan _lastStall;
    private TimeSpan? _lastRtt;

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
        _sealer = new FrameProtector(isClient ? secrets.ClientToServerKey : secrets.ServerToClientKey, encrypt);
        _openKey = (byte[])(isClient ? secrets.ServerToClientKey : secrets.ClientToServerKey).Clone();
        _resumeKey = (byte[])secrets.ResumeKey.Clone();
        IsEncrypted = encrypt;
        _sendLimit = Math.Min(options.MaxUnackedBytes, peerReceiveWindow);
        _receiveWindow = options.ReceiveWindow;
        _onEnded = onEnded;
        _stream = new MobileStream(this);
        // One-shot, re-armed by every tick: every KeepAliveInterval / 2 while active, at the next
        // idle keepalive or deadline while idle (see OnTick).
        _lastDataAt = _time.GetTimestamp() - ToTicks(options.DeadPathTimeout * 2); // no data yet: not active
        _tickDueAt = _time.GetTimestamp() + ToTicks(options.KeepAliveInterval / 2);
        _timer = _time.CreateTimer(static s => ((MobileConnection)s!).OnTick(), this, options.KeepAliveInterval / 2, Timeout.InfiniteTimeSpan);
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

    /// <summary>Local endpoint of the current flow (null while pathless).</summary>
    public IPEndPoint? LocalEndPoint
    {
        get
        {
            lock (_lock)
            {
                return _flow?.Flow.LocalEndPoint;
            }
        }
    }

    /// <summary>Remote endpoint of the current flow (null while pathless).</summary>
    public IPEndPoint? RemoteEndPoint
    {
        get
        {
            lock (_lock)
            {
                return _flow?.Flow.RemoteEndPoint;
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
                return new MobileConnectionStatistics(_bytesSent, _bytesReceived, _bytesResent, _duplicateBytes,
                    _moves, _resumeAttempts, _resumesRejected, _lastStall, _lastRtt, _pingsSent);
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
                    if (_finOffset >= 0)
                    {
                        throw new InvalidOperationException("Writes were shut down on this connection.");
                    }

                    var space = _sendLimit - (_written - _peerConsumed);
                    if (space > 0)
                    {
                        var n = (int)Math.Min(space, data.Length);
                        _sendBuffer.Append(data.Span[..n]);
                        _written += n;
                        data = data[n..];
                        MarkActiveLocked();
                        _flow?.Wake.Set();
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
                if (_receiveBuffer.Length > 0 && buffer.IsEmpty)
                {
                    return 0;
                }

                if (_receiveBuffer.Length > 0)
                {
                    var n = _receiveBuffer.Read(buffer.Span);
                    _consumed += n;
                    // Idle (no timer tick will flush it): a read that drains the buffer ACKs at once,
                    // in case the peer waits for window.
                    if (_consumed - _ackedConsumed >= AckEvery || (!_fastTicks && _receiveBuffer.Length == 0))
                    {
                        _flow?.Wake.Set();
                    }

                    return n;
                }

                if (_peerFin >= 0 && _received == _peerFin)
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
            if (_finOffset < 0)
            {
                _finOffset = _written;
                MarkActiveLocked();
                _flow?.Wake.Set();
            }
        }
    }

    /// <summary>
    /// Graceful close: shuts down writes, then waits until the peer acknowledged our FIN, its own
    /// FIN arrived, and (client) the server confirmed by closing the flow. Moves during the close
    /// are handled like any other (FIN is retransmitted on the resumed flow). Unread received data
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

    /// <summary>Aborts the connection: sends a RESET if a flow is up, fails pending and future reads and writes.</summary>
    public void Abort(string reason = "aborted by the application")
    {
        lock (_lock)
        {
            if (_failure is null && !_completed && _flow is not null)
            {
                _resetToSend = 1;
                _flow.Wake.Set();
            }
        }

        // Give the send loop a moment to put the RESET on the wire; the abort itself is immediate.
        _ = Task.Delay(TimeSpan.FromMilliseconds(100), _time).ContinueWith(
            static (_, state) =>
            {
                var (connection, why) = ((MobileConnection, string))state!;
                connection.Fail(new MobileConnectionException(MobileConnectionError.Aborted, why));
            },
            (this, reason),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    public async ValueTask DisposeAsync()
    {
        bool needReset;
        lock (_lock)
        {
            needReset = !_completed && _failure is null && _flow is not null;
            if (needReset)
            {
                _resetToSend = 1;
                _flow!.Wake.Set();
            }
        }

        if (needReset)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), _time).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Not cancellable; kept for the analyzer's sake.
            }
        }

        Fail(new MobileConnectionException(MobileConnectionError.Aborted, "The connection was disposed."));
        Task[] loops;
        lock (_lock)
        {
            loops = [.. _retiredLoops, _supervisor];
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
        await _timer.DisposeAsync().ConfigureAwait(false);
        lock (_lock)
        {
            _sendBuffer.Clear();
            _receiveBuffer.Clear();
        }

        _sealer.Dispose();
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

    /// <summary>Fails the connection with the first reason; later reasons are ignored.</summary>
    internal void Fail(Exception reason)
    {
        FlowContext? flow;
        lock (_lock)
        {
            if (_failure is not null)
            {
                return;
            }

            if (_completed)
            {
                // A completed connection keeps its data readable; only release the flow.
                flow = _flow;
                _flow = null;
                flow?.Stop(_retiredLoops);
                return;
            }

            _failure = reason;
            _state = MobileConnectionState.Failed;
            flow = _flow;
            _flow = null;
            flow?.Stop(_retiredLoops);
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
        FlowContext? flow;
        lock (_lock)
        {
            if (_completed || _failure is not null)
            {
                return;
            }

            _completed = true;
            _state = MobileConnectionState.Completed;
            flow = _flow;
            _flow = null;
            flow?.Stop(_retiredLoops);
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
