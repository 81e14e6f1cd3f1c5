using System.Threading.Channels;

namespace Mobility.Transport.Tests;

/// <summary>
/// An in-memory network with a fixed one-way latency. A connect costs one RTT (SYN, SYN-ACK), a
/// refused connect one RTT (SYN, RST), and bytes arrive one latency after they were written, in
/// order. Removing an address turns every flow that uses it into a black hole (writes vanish,
/// nothing arrives, nobody is told), as when a host loses its address for real; dropping an
/// address's traffic (<see cref="DropTraffic"/>) does the same while the host keeps the address, as
/// when an upstream stops forwarding. A flow opened without a local address comes from
/// <see cref="DefaultSource"/> (the default route's). Latency runs on the given clock (a
/// <see cref="VirtualClock"/> in the timing tests, the system clock otherwise). First flights (TCP
/// Fast Open without a cookie) are modelled when <see cref="FirstFlights"/> says so.
/// </summary>
internal sealed class SimulatedNetwork : IFlowFactory, IFlowListenerFactory
{
    private readonly object _gate = new();
    private readonly HashSet<IPAddress> _live = [];
    private readonly HashSet<IPAddress> _dropped = [];
    private readonly Dictionary<IPEndPoint, SimListener> _listeners = [];
    private int _nextPort = 20000;

    public SimulatedNetwork(TimeSpan oneWayLatency, TimeProvider? time = null)
    {
        Latency = oneWayLatency;
        Time = time ?? TimeProvider.System;
    }

    public TimeSpan Latency { get; }

    public TimeProvider Time { get; }

    public TimeSpan Rtt => Latency * 2;

    public int Connects;

    /// <summary>Connects for a first flight (a subset of <see cref="Connects"/>) while <see cref="FirstFlights"/> is not off.</summary>
    public int FirstFlightConnects;

    /// <summary>
    /// What a connect for a first flight (<see cref="IFlowFactory.ConnectFirstFlightAsync"/>) does: off (the
    /// default), a plain connect; otherwise it returns at once, the first write goes out in the SYN, and
    /// writes after it wait for the SYN-ACK. With <see cref="FirstFlightMode.Taken"/> a listener that asked
    /// for first flights takes the SYN's data (it reads it one latency after the write, and the accepted
    /// flow's handshake is pending until the client's ACK arrives); with <see cref="FirstFlightMode.NotTaken"/>
    /// (a server kernel without the server bit) the data is resent after the handshake, as Linux does.
    /// </summary>
    public FirstFlightMode FirstFlights { get; set; }

    /// <summary>
    /// Models what a new TCP flow of a real kernel sends (off by default: every write arrives whole one
    /// latency later): a SYN carries at most <see cref="SynDataBytes"/> of a first flight's first write (the
    /// rest waits for the SYN-ACK), and from the handshake on a flow sends <see cref="InitialWindowBytes"/>
    /// in its first round trip and twice as much in each next one (slow start, no loss), so bytes written
    /// beyond a round's window leave one RTT later.
    /// </summary>
    public bool SlowStart { get; set; }

    /// <summary>
    /// Called with the source address and length of every write a flow took, on the writer's thread, before the write
    /// returns: the bytes are in the flow (sent, or queued unsent), the writer has not yet been told.
    /// </summary>
    public Action<IPAddress, int>? AfterWrite { get; set; }

    /// <summary>Linux's initial congestion window: ten segments of 1,448 bytes.</summary>
    public const int InitialWindowBytes = 10 * 1448;

    /// <summary>What Linux puts in a SYN without a cookie over IPv4 at MTU 1500: one MSS less 40 bytes of options.</summary>
    public const int SynDataBytes = 1420;

    /// <summary>Where a flow opened without a local address comes from (the default route's source); null: such a connect fails.</summary>
    public IPAddress? DefaultSource { get; set; }

    /// <summary>Connects from each local address (null: opened without one), in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<IPAddress?> Sources { get; } = new();

    public IPAddress? SourceAddressFor(IPEndPoint remote) => DefaultSource;

    /// <summary>
    /// An upstream of <paramref name="address"/> stops forwarding: the host keeps the address (flows can
    /// still be opened from it) but nothing it sends or is sent arrives, and nobody is told.
    /// </summary>
    public void DropTraffic(IPAddress address)
    {
        lock (_gate)
        {
            _dropped.Add(address);
        }
    }

    /// <summary>The upstream of <paramref name="address"/> forwards again.</summary>
    public void RestoreTraffic(IPAddress address)
    {
        lock (_gate)
        {
            _dropped.Remove(address);
        }
    }

    /// <summary>Whether a segment from <paramref name="from"/> reaches <paramref name="to"/>.</summary>
    public bool Forwards(IPAddress from, IPAddress to)
    {
        lock (_gate)
        {
            return _live.Contains(from) && _live.Contains(to) && !_dropped.Contains(from) && !_dropped.Contains(to);
        }
    }

    public void AddAddress(IPAddress address)
    {
        lock (_gate)
        {
            _live.Add(address);
        }
    }

    public void RemoveAddress(IPAddress address)
    {
        lock (_gate)
        {
            _live.Remove(address);
        }
    }

    /// <summary>A host moves: <paramref name="from"/> is gone (a black hole, no RST), <paramref name="to"/> is live.</summary>
    public void MoveAddress(IPAddress from, IPAddress to)
    {
        lock (_gate)
        {
            _live.Remove(from);
            _live.Add(to);
        }
    }

    public bool IsLive(IPAddress address)
    {
        lock (_gate)
        {
            return _live.Contains(address);
        }
    }

    public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Connects);
        Sources.Enqueue(localAddress);
        localAddress ??= DefaultSource;
        if (localAddress is null || !IsLive(localAddress))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }

        IPEndPoint local;
        lock (_gate)
        {
            local = new IPEndPoint(localAddress, _nextPort++);
        }

        await Task.Delay(Latency, Time, cancellationToken); // SYN
        if (!Forwards(localAddress, remote.Address))
        {
            await Task.Delay(Timeout.Infinite, cancellationToken); // Black hole: only a timeout ends this.
        }

        SimListener? listener;
        lock (_gate)
        {
            _listeners.TryGetValue(remote, out listener);
        }

        if (listener is null)
        {
            await Task.Delay(Latency, Time, cancellationToken); // RST
            throw new SocketException((int)SocketError.ConnectionRefused);
        }

        var toServer = new SimPipe(this, local.Address, remote.Address);
        var toClient = new SimPipe(this, remote.Address, local.Address);
        var clientFlow = new SimFlow(local, remote, toClient, toServer);
        var serverFlow = new SimFlow(remote, local, toServer, toClient);
        listener.Enqueue(serverFlow);
        await Task.Delay(Latency, Time, cancellationToken); // SYN-ACK
        toServer.StartWindow();
        clientFlow.SmoothedRtt = Rtt;   // the kernel's first sample: SYN to SYN-ACK
        return clientFlow;
    }

    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => ConnectFirstFlightAsync(remote, localAddress, 0, cancellationToken);

    /// <summary>First flights opened from a chosen port (a server's call back from its listener's port).</summary>
    public int PortedFirstFlights;

    // The 4-tuples of open flows opened from a chosen port (guarded by _gate).
    private readonly HashSet<(IPEndPoint Local, IPEndPoint Remote)> _portedFlows = [];

    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, int localPort, CancellationToken cancellationToken)
    {
        if (FirstFlights == FirstFlightMode.Off)
        {
            return ConnectAsync(remote, localAddress, cancellationToken);
        }

        Interlocked.Increment(ref Connects);
        Interlocked.Increment(ref FirstFlightConnects);
        Sources.Enqueue(localAddress);
        localAddress ??= DefaultSource;
        if (localAddress is null || !IsLive(localAddress))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }

        IPEndPoint local;
        lock (_gate)
        {
            local = new IPEndPoint(localAddress, localPort != 0 ? localPort : _nextPort++);
            // As the kernel: a chosen port cannot open a second flow to the same remote endpoint while the first is open
            // (connect fails with EADDRNOTAVAIL), however long that one waits for its SYN-ACK.
            if (localPort != 0 && !_portedFlows.Add((local, remote)))
            {
                throw new SocketException((int)SocketError.AddressNotAvailable);
            }
        }

        if (localPort != 0)
        {
            Interlocked.Increment(ref PortedFirstFlights);
        }

        // Nothing is sent yet: the SYN leaves with the first write.
        var toServer = new SimPipe(this, local.Address, remote.Address);
        var toClient = new SimPipe(this, remote.Address, local.Address);
        var flow = new SimFlow(local, remote, toClient, toServer);
        flow.FirstFlight = new FirstFlight(this, flow, toServer, toClient);
        if (localPort != 0)
        {
            flow.Closed.Register(() =>
            {
                lock (_gate)
                {
                    _portedFlows.Remove((local, remote));
                }
            });
        }

        return ValueTask.FromResult<IFlow>(flow);
    }

    public IFlowListener Listen(IPEndPoint endpoint) => Listen(endpoint, 0, 0);

    public IFlowListener Listen(IPEndPoint endpoint, int backlog, int fastOpenQueue)
    {
        lock (_gate)
        {
            var bound = endpoint.Port == 0 ? new IPEndPoint(endpoint.Address, _nextPort++) : endpoint;
            if (_listeners.ContainsKey(bound))
            {
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            }

            var listener = new SimListener(this, bound, fastOpenQueue > 0);
            _listeners[bound] = listener;
            return listener;
        }
    }

    private void Unlisten(IPEndPoint endpoint)
    {
        lock (_gate)
        {
            _listeners.Remove(endpoint);
        }
    }

    private SimListener? ListenerAt(IPEndPoint endpoint)
    {
        lock (_gate)
        {
            return _listeners.GetValueOrDefault(endpoint);
        }
    }

    private sealed class SimListener(SimulatedNetwork network, IPEndPoint endpoint, bool fastOpenAsked) : IFlowListener
    {
        private readonly Channel<IFlow> _accepted = Channel.CreateUnbounded<IFlow>();

        public IPEndPoint LocalEndPoint => endpoint;

        public bool FastOpen => fastOpenAsked && network.FirstFlights == FirstFlightMode.Taken;

        public void Enqueue(IFlow flow) => _accepted.Writer.TryWrite(flow);

        public async ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await _accepted.Reader.ReadAsync(cancellationToken);
            }
            catch (ChannelClosedException e)
            {
                throw new ObjectDisposedException("listener", e);
            }
        }

        public ValueTask DisposeAsync()
        {
            network.Unlisten(endpoint);
            _accepted.Writer.TryComplete();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>One direction of a flow: segments stamped with their delivery time.</summary>
    internal sealed class SimPipe(SimulatedNetwork network, IPAddress from, IPAddress to)
    {
        public IPAddress From => from;

        public SimulatedNetwork Network => network;

        private readonly Channel<(long DueTicks, byte[]? Data, bool Reset)> _segments = Channel.CreateUnbounded<(long, byte[]?, bool)>();
        private readonly object _gate = new();

        // Slow start (SimulatedNetwork.SlowStart): the window starts at InitialWindowBytes and doubles with each round that
        // filled it (a round's ACKs come back one RTT after it started); a round that did not fill it (the flow was not
        // limited by its window: idle, or a trickle) leaves the window as it was, as Linux grows cwnd only when it limits
        // the sender. So a flow that only ever carried keepalives (a standby path) still has its first window.
        private long _roundStart = network.Time.GetTimestamp();
        private int _round;
        private long _roundBytes;

        /// <summary>The handshake completed: the first round of the flow's window starts now.</summary>
        public void StartWindow()
        {
            lock (_gate)
            {
                _roundStart = network.Time.GetTimestamp();
                _round = 0;
                _roundBytes = 0;
            }
        }

        /// <summary>Bytes written while the sending address was not the host's (a kernel keeps them queued, unsent).</summary>
        public long Unsent;

        public void Send(ReadOnlySpan<byte> data)
        {
            if (!network.Forwards(from, to))
            {
                if (!network.IsLive(from))
                {
                    Interlocked.Add(ref Unsent, data.Length);
                }

                return;
            }

            if (!network.SlowStart)
            {
                _segments.Writer.TryWrite((Due(), data.ToArray(), false));
                return;
            }

            lock (_gate)
            {
                var now = network.Time.GetTimestamp();
                var rtt = (long)(network.Rtt.TotalSeconds * network.Time.TimestampFrequency);
                var latency = (long)(network.Latency.TotalSeconds * network.Time.TimestampFrequency);
                while (!data.IsEmpty)
                {
                    var window = InitialWindowBytes << Math.Min(_round, 20);
                    if (now >= _roundStart + rtt && _roundBytes < window)
                    {
                        // The last round's ACKs are back and it did not fill the window: a new round, no growth.
                        _roundStart = now;
                        _roundBytes = 0;
                    }

                    var room = window - _roundBytes;
                    if (room <= 0)
                    {
                        // The round filled the window: the next, twice as large, starts when its ACKs are back.
                        _round++;
                        _roundStart = Math.Max(now, _roundStart + rtt);
                        _roundBytes = 0;
                        continue;
                    }

                    var n = (int)Math.Min(room, data.Length);
                    var leaves = Math.Max(now, _roundStart);
                    _segments.Writer.TryWrite((leaves + latency, data[..n].ToArray(), false));
                    _roundBytes += n;
                    data = data[n..];
                }
            }
        }

        /// <summary>Data that has already crossed the network (a SYN's, read when the SYN arrived).</summary>
        public void Arrived(byte[] data)
        {
            if (network.Forwards(from, to))
            {
                _segments.Writer.TryWrite((network.Time.GetTimestamp(), data, false));
            }
        }

        public void Close(bool reset)
        {
            if (network.Forwards(from, to))
            {
                _segments.Writer.TryWrite((Due(), null, reset));
            }
        }

        private long Due() => network.Time.GetTimestamp() + (long)(network.Latency.TotalSeconds * network.Time.TimestampFrequency);

        /// <summary>Next segment once due; null data means end of stream.</summary>
        public async ValueTask<(byte[]? Data, bool Reset)> ReceiveAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var (due, data, reset) = await _segments.Reader.ReadAsync(cancellationToken);
                var wait = due - network.Time.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)wait / network.Time.TimestampFrequency), network.Time, cancellationToken);
                }

                if (!network.Forwards(from, to))
                {
                    continue; // Lost in flight: an end moved away.
                }

                return (data, reset);
            }
        }
    }

    internal sealed class SimFlow : IFlow
    {
        private readonly CancellationTokenSource _closed = new();
        private readonly SimStream _stream;
        private int _state;

        private readonly SimPipe _outgoing;

        public SimFlow(IPEndPoint local, IPEndPoint remote, SimPipe incoming, SimPipe outgoing)
        {
            LocalEndPoint = local;
            RemoteEndPoint = remote;
            _outgoing = outgoing;
            _stream = new SimStream(this, incoming, outgoing);
        }

        /// <summary>Bytes written after the flow's local address left the host (upstream drops, <see cref="DropTraffic"/>, count as sent).</summary>
        public long? UnsentBytes => Interlocked.Read(ref _outgoing.Unsent);

        public Stream Stream => _stream;

        public IPEndPoint? LocalEndPoint { get; }

        public IPEndPoint? RemoteEndPoint { get; }

        public CancellationToken Closed => _closed.Token;

        /// <summary>Connecting side of a first flight: its SYN and what waits for the SYN-ACK.</summary>
        public FirstFlight? FirstFlight { get; set; }

        /// <summary>Accepted side of a first flight: when the client's ACK completes the handshake (timestamp).</summary>
        public long? HandshakeCompleteAt { get; init; }

        public TimeProvider? Time { get; init; }

        public bool IsHandshakePending => HandshakeCompleteAt is { } at && Time!.GetTimestamp() < at;

        public bool? FirstFlightTaken => FirstFlight?.Taken;

        public bool OpensWithFirstFlight => FirstFlight is not null;

        /// <summary>Connecting side: the network's RTT once the SYN-ACK arrived (as the kernel's smoothed RTT); null before.</summary>
        public TimeSpan? SmoothedRtt { get; set; }

        public void Abort() => Close(reset: true);

        public ValueTask DisposeAsync()
        {
            Close(reset: false);
            return ValueTask.CompletedTask;
        }

        private void Close(bool reset)
        {
            if (Interlocked.Exchange(ref _state, 1) == 0)
            {
                _stream.Outgoing.Close(reset);
                _closed.Cancel();
            }
        }
    }

    private sealed class SimStream(SimFlow flow, SimPipe incoming, SimPipe outgoing) : Stream
    {
        private byte[]? _pending;
        private int _pendingOffset;
        private bool _eof;

        public SimPipe Outgoing => outgoing;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_eof)
            {
                return 0;
            }

            if (_pending is null)
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, flow.Closed);
                (byte[]? Data, bool Reset) segment;
                try
                {
                    segment = await incoming.ReceiveAsync(linked.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new IOException("The flow was closed locally.");
                }

                if (segment.Data is null)
                {
                    if (segment.Reset)
                    {
                        throw new IOException("Connection reset by peer (simulated).");
                    }

                    _eof = true;
                    return 0;
                }

                _pending = segment.Data;
                _pendingOffset = 0;
            }

            var n = Math.Min(buffer.Length, _pending.Length - _pendingOffset);
            _pending.AsSpan(_pendingOffset, n).CopyTo(buffer.Span);
            _pendingOffset += n;
            if (_pendingOffset == _pending.Length)
            {
                _pending = null;
            }

            return n;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (flow.Closed.IsCancellationRequested)
            {
                throw new IOException("The flow is closed.");
            }

            if (flow.FirstFlight is not { } first || !first.Hold(buffer.Span))
            {
                outgoing.Send(buffer.Span);
            }

            outgoing.Network.AfterWrite?.Invoke(outgoing.From, buffer.Length);
            return ValueTask.CompletedTask;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>
    /// The connecting side's first flight: the first write is the SYN's data, the SYN leaves with it;
    /// one latency later the listener (if any) accepts, reading that data at once if it takes first
    /// flights; one more and the SYN-ACK arrives, after which the writes held meanwhile (and the SYN's
    /// data, if not taken) are sent. A SYN into a black hole leaves the flow hanging (no retransmission
    /// is modelled); no listener: a reset arrives one RTT after the SYN left.
    /// </summary>
    internal sealed class FirstFlight(SimulatedNetwork network, SimFlow flow, SimPipe toServer, SimPipe toClient)
    {
        private readonly object _gate = new();
        private List<byte[]>? _held = [];
        private byte[]? _syn;

        /// <summary>Whether the SYN-ACK acknowledged the SYN's data; null before it arrived.</summary>
        public bool? Taken { get; private set; }

        /// <summary>True when <paramref name="data"/> is held (the SYN's, or waiting for the SYN-ACK); false once the flow is established.</summary>
        public bool Hold(ReadOnlySpan<byte> data)
        {
            lock (_gate)
            {
                if (_held is null)
                {
                    return false;
                }

                if (_syn is null)
                {
                    // A real SYN has room for one segment: the rest of the first write waits for the SYN-ACK.
                    var inSyn = network.SlowStart ? Math.Min(data.Length, SynDataBytes) : data.Length;
                    _syn = data[..inSyn].ToArray();
                    if (inSyn < data.Length)
                    {
                        _held.Add(data[inSyn..].ToArray());
                    }

                    _ = HandshakeAsync(_syn);
                }
                else
                {
                    _held.Add(data.ToArray());
                }

                return true;
            }
        }

        private async Task HandshakeAsync(byte[] synData)
        {
            var local = flow.LocalEndPoint!;
            var remote = flow.RemoteEndPoint!;
            try
            {
                var sent = network.Forwards(local.Address, remote.Address);
                await Task.Delay(network.Latency, network.Time, flow.Closed); // SYN and its data
                if (!sent || !network.Forwards(local.Address, remote.Address))
                {
                    return;
                }

                if (network.ListenerAt(remote) is not { } listener)
                {
                    toClient.Close(reset: true); // RST
                    return;
                }

                var taken = listener.FastOpen;
                var frequency = network.Time.TimestampFrequency;
                var server = new SimFlow(remote, local, toServer, toClient)
                {
                    Time = network.Time,
                    HandshakeCompleteAt = network.Time.GetTimestamp() + (long)(network.Rtt.TotalSeconds * frequency),
                };
                if (taken)
                {
                    toServer.Arrived(synData);
                }

                listener.Enqueue(server);
                await Task.Delay(network.Latency, network.Time, flow.Closed); // SYN-ACK
                if (!network.Forwards(remote.Address, local.Address))
                {
                    return;
                }

                lock (_gate)
                {
                    Taken = taken;
                    flow.SmoothedRtt = network.Rtt;
                    toServer.StartWindow();
                    if (!taken)
                    {
                        toServer.Send(synData); // the kernel resends the SYN's data after the handshake
                    }

                    foreach (var held in _held!)
                    {
                        toServer.Send(held);
                    }

                    _held = null;
                }
            }
            catch (OperationCanceledException)
            {
                // The flow was closed before its handshake completed.
            }
        }
    }
}

/// <summary>What <see cref="SimulatedNetwork"/> does with a connect for a first flight.</summary>
internal enum FirstFlightMode
{
    /// <summary>A plain connect (one RTT before it returns).</summary>
    Off,

    /// <summary>The connect returns at once and the SYN carries the first write; listeners take it.</summary>
    Taken,

    /// <summary>The connect returns at once and the SYN carries the first write; listeners do not take it (resent after the handshake).</summary>
    NotTaken,
}
