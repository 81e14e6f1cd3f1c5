using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Bench.Gns;

/// <summary>How a <see cref="LoadRunner"/> chooses work and when it stops.</summary>
public enum LoadMode
{
    /// <summary>Random hosts for a fixed time (warm-up, then the measured window), like dnsperf -l.</summary>
    Timed,

    /// <summary>Every host exactly once, retried until acknowledged (preload), bounded by a time limit.</summary>
    EachItemOnce,
}

public sealed record LoadSettings(
    IPEndPoint Server,
    int Sockets,
    int Concurrency,
    TimeSpan Timeout,
    LoadMode Mode,
    TimeSpan Warmup,
    TimeSpan Duration,
    TimeSpan TimeLimit,
    int MaxAttempts = 8);

/// <summary>
/// Keeps a fixed number of requests outstanding over several connected UDP sockets (like dnsperf's
/// -c clients and -q outstanding): each reply, on the socket's receive loop, immediately sends the
/// slot's next request. One receive loop per socket (async, allocation-free ValueTask receive on a
/// connected socket), a timer thread for timeouts, fixed per-socket histograms merged at the end.
/// Every loop is bounded in time and stops by itself.
/// </summary>
public sealed class LoadRunner
{
    private static readonly double TicksPerMicro = Stopwatch.Frequency / 1_000_000.0;
    private static readonly long RetryPauseTicks = Stopwatch.Frequency / 500;
    private readonly LoadProtocol _protocol;
    private readonly LoadSettings _settings;
    private readonly int _itemCount;
    private readonly int _slotBits;
    private readonly uint _slotMask;
    private readonly uint _seqMask;
    private readonly SocketState[] _sockets;
    private readonly long _timeoutTicks;
    private int _nextItem = -1;
    private int _finishedItems;
    private long _measureStart;
    private long _measureEnd = long.MaxValue;
    private volatile bool _stopping;

    public LoadRunner(LoadProtocol protocol, int itemCount, LoadSettings settings)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        ArgumentNullException.ThrowIfNull(settings);
        _protocol = protocol;
        _settings = settings;
        _itemCount = itemCount;
        var sockets = Math.Clamp(settings.Sockets, 1, settings.Concurrency);
        var perSocket = (settings.Concurrency + sockets - 1) / sockets;
        _slotBits = Math.Max(1, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)perSocket - 1));
        if (_slotBits > protocol.IdBits - 4)
        {
            throw new ArgumentException($"{perSocket} outstanding requests per socket leave too few request-id bits; use more sockets.");
        }

        _slotMask = (1u << _slotBits) - 1;
        _seqMask = protocol.IdBits == 32 ? uint.MaxValue >> _slotBits : ((1u << protocol.IdBits) - 1) >> _slotBits;
        _timeoutTicks = (long)(settings.Timeout.TotalSeconds * Stopwatch.Frequency);
        _sockets = new SocketState[sockets];
        for (var i = 0; i < sockets; i++)
        {
            var slots = (settings.Concurrency / sockets) + (i < settings.Concurrency % sockets ? 1 : 0);
            _sockets[i] = new SocketState(settings.Server, slots, protocol.MaxRequestSize, seed: 7919 * (i + 1));
        }
    }

    public async Task<LoadResult> RunAsync()
    {
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(_settings.TimeLimit.TotalSeconds * Stopwatch.Frequency);
        if (_settings.Mode == LoadMode.Timed)
        {
            _measureStart = start + (long)(_settings.Warmup.TotalSeconds * Stopwatch.Frequency);
            _measureEnd = _measureStart + (long)(_settings.Duration.TotalSeconds * Stopwatch.Frequency);
            deadline = Math.Min(deadline, _measureEnd + _timeoutTicks + Stopwatch.Frequency);
        }
        else
        {
            _measureStart = start;
        }

        var loadBefore = LoadAverage.Read();
        var loops = new Task[_sockets.Length];
        for (var i = 0; i < _sockets.Length; i++)
        {
            var s = _sockets[i];
            loops[i] = Task.Run(() => ReceiveLoopAsync(s));
        }

        foreach (var s in _sockets)
        {
            lock (s.Gate)
            {
                foreach (var slot in s.Slots)
                {
                    StartNext(s, slot, Stopwatch.GetTimestamp());
                }
            }
        }

        // The timer thread: timeouts, the end of the window, the drain. Bounded by the deadline.
        var timer = new Thread(() => TimerLoop(deadline)) { IsBackground = true, Name = "load-timer", Priority = ThreadPriority.AboveNormal };
        timer.Start();
        await Task.Run(timer.Join);
        var end = Stopwatch.GetTimestamp();
        foreach (var s in _sockets)
        {
            s.Socket.Dispose();
        }

        await Task.WhenAll(loops);
        var loadAfter = LoadAverage.Read();

        var measuredEnd = _settings.Mode == LoadMode.Timed ? Math.Min(_measureEnd, end) : end;
        var seconds = Math.Max(1e-9, (measuredEnd - _measureStart) / (double)Stopwatch.Frequency);
        var histogram = new LatencyHistogram();
        var counts = new long[Enum.GetValues<ReplyOutcome>().Length];
        long timeouts = 0, late = 0, sendErrors = 0, verified = 0, verifyFailures = 0, lost = 0, retries = 0, failedItems = 0, staleAfterRetry = 0;
        foreach (var s in _sockets)
        {
            lock (s.Gate)
            {
                histogram.Add(s.Histogram);
                for (var i = 0; i < counts.Length; i++)
                {
                    counts[i] += s.Counts[i];
                }

                timeouts += s.Timeouts;
                late += s.Late;
                sendErrors += s.SendErrors;
                verified += s.Verified;
                verifyFailures += s.VerifyFailures;
                retries += s.Retries;
                failedItems += s.FailedItems;
                staleAfterRetry += s.StaleAfterRetry;
                lost += s.Slots.Count(x => x.Outstanding || x.RetryAt != 0);
            }
        }

        var answered = histogram.Count;
        return new LoadResult
        {
            Protocol = _protocol.Name,
            Server = _settings.Server.ToString(),
            Sockets = _sockets.Length,
            Concurrency = _sockets.Sum(s => s.Slots.Length),
            Seconds = Math.Round(seconds, 3),
            Answered = answered,
            Ok = counts[(int)ReplyOutcome.Ok],
            PerSecond = Math.Round(answered / seconds, 1),
            OkPerSecond = Math.Round(counts[(int)ReplyOutcome.Ok] / seconds, 1),
            MeanMs = Math.Round(histogram.MeanMicros / 1000, 3),
            P50Ms = histogram.Percentile(0.50) / 1000.0,
            P90Ms = histogram.Percentile(0.90) / 1000.0,
            P99Ms = histogram.Percentile(0.99) / 1000.0,
            P999Ms = histogram.Percentile(0.999) / 1000.0,
            MaxMs = histogram.MaxMicros / 1000.0,
            Outcomes = Enum.GetValues<ReplyOutcome>().Where(o => counts[(int)o] > 0).ToDictionary(o => o.ToString(), o => counts[(int)o]),
            Timeouts = timeouts,
            LostAtEnd = lost,
            Late = late,
            SendErrors = sendErrors,
            Retries = retries,
            FailedItems = failedItems,
            StaleAfterRetry = staleAfterRetry,
            VerifiedSamples = verified,
            VerifyFailures = verifyFailures,
            LoadAverageBefore = loadBefore,
            LoadAverageAfter = loadAfter,
        };
    }

    private void TimerLoop(long deadline)
    {
        while (true)
        {
            Thread.Sleep(5);
            var now = Stopwatch.GetTimestamp();
            if (_settings.Mode == LoadMode.Timed && now >= _measureEnd)
            {
                _stopping = true;
            }

            var outstanding = 0;
            foreach (var s in _sockets)
            {
                lock (s.Gate)
                {
                    foreach (var slot in s.Slots)
                    {
                        if (slot.Outstanding && now - slot.SentAt > _timeoutTicks)
                        {
                            OnTimeout(s, slot, now);
                        }
                        else if (slot.RetryAt != 0 && now >= slot.RetryAt)
                        {
                            slot.RetryAt = 0;
                            if (_stopping)
                            {
                                FinishItem();
                            }
                            else
                            {
                                Send(s, slot, slot.Item, now, slot.Attempts);
                            }
                        }

                        if (slot.Outstanding)
                        {
                            outstanding++;
                        }
                    }
                }
            }

            var finished = _settings.Mode == LoadMode.EachItemOnce
                ? Volatile.Read(ref _finishedItems) >= _itemCount
                : _stopping && outstanding == 0;
            if (finished || now >= deadline)
            {
                _stopping = true;
                return;
            }
        }
    }

    private async Task ReceiveLoopAsync(SocketState s)
    {
        var buffer = s.ReceiveBuffer;
        while (true)
        {
            int length;
            try
            {
                length = await s.Socket.ReceiveAsync(buffer, SocketFlags.None);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                // ICMP port unreachable from an earlier send: the server is not there (yet). Timeouts resend.
                Interlocked.Increment(ref s.SendErrors);
                if (_stopping)
                {
                    return;
                }

                await Task.Delay(1);
                continue;
            }

            OnReply(s, buffer.AsSpan(0, length));
        }
    }

    private void OnReply(SocketState s, ReadOnlySpan<byte> reply)
    {
        if (!_protocol.TryReadId(reply, out var id))
        {
            Interlocked.Increment(ref s.Late);
            return;
        }

        var index = (int)(id & _slotMask);
        var seq = (id >> _slotBits) & _seqMask;
        lock (s.Gate)
        {
            if (index >= s.Slots.Length || s.Slots[index] is not { Outstanding: true } slot || slot.Seq != seq)
            {
                s.Late++;
                return;
            }

            var now = Stopwatch.GetTimestamp();
            slot.Outstanding = false;
            var outcome = _protocol.Check(reply, slot.Buffer.AsSpan(0, slot.Length), slot.Item);
            var inWindow = now >= _measureStart && now <= _measureEnd;
            if (inWindow)
            {
                s.Counts[(int)outcome]++;
                s.Histogram.Record((long)((now - slot.SentAt) / TicksPerMicro));
            }

            if (outcome == ReplyOutcome.Ok && (++s.OkSeen & 1023) == 1)
            {
                // A sample of replies is decoded in full (and its signature checked) off the fast path.
                if (_protocol.VerifyFully(reply, slot.Item))
                {
                    s.Verified++;
                }
                else
                {
                    s.VerifyFailures++;
                }
            }

            if (_settings.Mode == LoadMode.EachItemOnce)
            {
                switch (outcome)
                {
                    case ReplyOutcome.Ok:
                        FinishItem();
                        break;
                    case ReplyOutcome.Stale when slot.Attempts > 1:
                        // An earlier attempt was stored but its ack was lost.
                        s.StaleAfterRetry++;
                        FinishItem();
                        break;
                    case ReplyOutcome.Busy or ReplyOutcome.RateLimited when slot.Attempts < 1000:
                        // The server is full: retry the same record after a short pause (the timer thread sends it).
                        s.Retries++;
                        slot.Attempts++;
                        slot.RetryAt = now + RetryPauseTicks;
                        return;
                    default:
                        s.FailedItems++;
                        FinishItem();
                        break;
                }
            }

            StartNext(s, slot, now);
        }
    }

    private void OnTimeout(SocketState s, Slot slot, long now)
    {
        slot.Outstanding = false;
        if (now >= _measureStart && now <= _measureEnd)
        {
            s.Timeouts++;
        }

        if (_settings.Mode == LoadMode.EachItemOnce)
        {
            if (slot.Attempts < _settings.MaxAttempts)
            {
                s.Retries++;
                Send(s, slot, slot.Item, now, slot.Attempts + 1);
                return;
            }

            s.FailedItems++;
            FinishItem();
        }

        StartNext(s, slot, now);
    }

    private void FinishItem() => Interlocked.Increment(ref _finishedItems);

    /// <summary>Sends the slot's next request, unless the run is stopping or (preload) every item is taken.</summary>
    private void StartNext(SocketState s, Slot slot, long now)
    {
        if (_stopping)
        {
            return;
        }

        int item;
        if (_settings.Mode == LoadMode.Timed)
        {
            item = s.Random.Next(_itemCount);
        }
        else
        {
            item = Interlocked.Increment(ref _nextItem);
            if (item >= _itemCount)
            {
                return;
            }
        }

        Send(s, slot, item, now, 1);
    }

    private void Send(SocketState s, Slot slot, int item, long now, int attempts)
    {
        slot.Seq = (slot.Seq + 1) & _seqMask;
        slot.Item = item;
        slot.Attempts = attempts;
        slot.Length = _protocol.WriteRequest(slot.Buffer, item, (slot.Seq << _slotBits) | (uint)slot.Index);
        slot.SentAt = now;
        slot.Outstanding = true;
        try
        {
            s.Socket.Send(slot.Buffer.AsSpan(0, slot.Length), SocketFlags.None);
        }
        catch (SocketException)
        {
            // Counted; the slot stays outstanding and the timeout resends.
            Interlocked.Increment(ref s.SendErrors);
        }
        catch (ObjectDisposedException)
        {
            slot.Outstanding = false;
        }
    }

    private sealed class SocketState
    {
        public SocketState(IPEndPoint server, int slots, int maxRequestSize, int seed)
        {
            Socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp)
            {
                ReceiveBufferSize = 1 << 20,
                SendBufferSize = 1 << 20,
            };
            // Connected: the kernel filters replies to the server's address and reports ICMP errors;
            // Send and ReceiveAsync need no address, so nothing is allocated per datagram.
            Socket.Connect(server);
            Slots = new Slot[slots];
            for (var i = 0; i < slots; i++)
            {
                Slots[i] = new Slot(i, new byte[maxRequestSize]);
            }

            Random = new Random(seed);
        }

        public Lock Gate { get; } = new();

        public Socket Socket { get; }

        public Slot[] Slots { get; }

        public byte[] ReceiveBuffer { get; } = new byte[2048];

        public Random Random { get; }

        public LatencyHistogram Histogram { get; } = new();

        public long[] Counts { get; } = new long[Enum.GetValues<ReplyOutcome>().Length];

#pragma warning disable SA1401, CA1051 // Counters are updated under Gate (or with Interlocked) by the hot loop.
        public long Timeouts;
        public long Late;
        public long SendErrors;
        public long Verified;
        public long VerifyFailures;
        public long OkSeen;
        public long Retries;
        public long FailedItems;
        public long StaleAfterRetry;
#pragma warning restore SA1401, CA1051
    }

    private sealed class Slot(int index, byte[] buffer)
    {
        public int Index { get; } = index;

        public byte[] Buffer { get; } = buffer;

        public int Length { get; set; }

        public int Item { get; set; }

        public uint Seq { get; set; }

        public int Attempts { get; set; }

        public long SentAt { get; set; }

        public bool Outstanding { get; set; }

        /// <summary>When a refused request is to be sent again (0: none pending).</summary>
        public long RetryAt { get; set; }
    }
}

/// <summary>The system load average (1, 5, 15 minutes) from /proc/loadavg, or null elsewhere.</summary>
public static class LoadAverage
{
    public static string? Read()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]} {parts[1]} {parts[2]}";
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

public sealed class LoadResult
{
    public string Phase { get; set; } = "";

    public string Label { get; set; } = "";

    public string Protocol { get; init; } = "";

    public string Server { get; init; } = "";

    public int Sockets { get; init; }

    public int Concurrency { get; init; }

    public double Seconds { get; init; }

    /// <summary>Replies (of any outcome) received in the measured window.</summary>
    public long Answered { get; init; }

    public long Ok { get; init; }

    public double PerSecond { get; init; }

    public double OkPerSecond { get; init; }

    public double MeanMs { get; init; }

    public double P50Ms { get; init; }

    public double P90Ms { get; init; }

    public double P99Ms { get; init; }

    public double P999Ms { get; init; }

    public double MaxMs { get; init; }

    public Dictionary<string, long> Outcomes { get; init; } = [];

    public long Timeouts { get; init; }

    public long LostAtEnd { get; init; }

    public long Late { get; init; }

    public long SendErrors { get; init; }

    public long Retries { get; init; }

    public long FailedItems { get; init; }

    public long StaleAfterRetry { get; init; }

    public long VerifiedSamples { get; init; }

    public long VerifyFailures { get; init; }

    public string? LoadAverageBefore { get; init; }

    public string? LoadAverageAfter { get; init; }
}
