namespace Mobility.Transport.Handshakes;

/// <summary>
/// What the flows in the listener's handshake may hold, and who goes first. A flow is admitted at
/// accept (or refused when even evicting cannot make room), is <em>unidentified</em> until its first
/// message arrives, and then either leaves at once (a Resume: served ahead of every new handshake) or
/// asks for a handshake slot (a ClientHello: the server signs and waits for ClientFinish).
/// <list type="bullet">
/// <item>At capacity, a new flow evicts the oldest unidentified one instead of being reset: a genuine
/// client sends its first message within one round trip of the accept, so idle sockets, however many
/// and from however many sources, cannot keep it out; they only push each other out.</item>
/// <item>Slots are bounded in total and per source (<see cref="SourcePrefix"/>); hellos over either
/// bound wait, and a freed slot goes to the waiting sources in turn (round robin), so one source's
/// burst queues behind itself, not in front of everybody.</item>
/// <item>When a hello has to wait, the slot holder that has waited longest for its ClientFinish, past
/// a grace of a few round trips, is cut: half-done handshakes cannot sit on the slots.</item>
/// <item><see cref="UnderLoad"/> tells the listener to answer cookieless hellos with a cookie.</item>
/// </list>
/// One lock; every operation is O(1) but granting a freed slot, which looks at the waiting sources.
/// </summary>
internal sealed class HandshakeAdmission(int capacity, int maxSlots, int maxSlotsPerSource, int cookieThreshold, TimeSpan finishGrace, TimeProvider time)
{
    private readonly object _gate = new();
    private readonly LinkedList<Ticket> _unidentified = new();       // oldest accept first
    private readonly LinkedList<Ticket> _awaitingFinish = new();     // oldest ServerHello first
    private readonly Dictionary<SourcePrefix, Source> _sources = [];
    private readonly LinkedList<Source> _waitingSources = new();     // round robin
    private int _admitted;
    private int _slots;
    private int _waiting;

    /// <summary>Flows admitted and not yet released.</summary>
    public int Admitted => Volatile.Read(ref _admitted);

    /// <summary>Hellos holding a slot.</summary>
    public int Slots => Volatile.Read(ref _slots);

    /// <summary>Hellos waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Flows whose first message has not arrived.</summary>
    public int Unidentified
    {
        get
        {
            lock (_gate)
            {
                return _unidentified.Count;
            }
        }
    }

    /// <summary>So many hellos hold or wait for a slot that a new one must first prove it comes back (a cookie).</summary>
    public bool UnderLoad => Volatile.Read(ref _slots) + Volatile.Read(ref _waiting) >= cookieThreshold;

    /// <summary>Admits a just-accepted flow; null when full of identified flows (the caller resets it).</summary>
    public Ticket? TryAdmit(SourcePrefix source)
    {
        Ticket? evicted = null;
        var ticket = new Ticket(source);
        lock (_gate)
        {
            if (_admitted >= capacity)
            {
                if (_unidentified.First is not { } oldest)
                {
                    return null;
                }

                evicted = oldest.Value;
                ReleaseLocked(evicted, grants: []);   // unidentified: it held no slot to hand on
            }

            ticket.Node = _unidentified.AddLast(ticket);
            _admitted++;
        }

        evicted?.Cut();
        return ticket;
    }

    /// <summary>The flow's first message arrived: it is no longer evicted for being idle.</summary>
    public void Identified(Ticket ticket)
    {
        lock (_gate)
        {
            if (ticket.Node is { } node)
            {
                _unidentified.Remove(node);
                ticket.Node = null;
            }
        }
    }

    /// <summary>Waits for a handshake slot (the caller's token carries its handshake deadline).</summary>
    public async ValueTask AcquireSlotAsync(Ticket ticket, CancellationToken cancellationToken)
    {
        Task granted;
        Ticket? cut = null;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(ticket.Released, ticket);
            var source = SourceOf(ticket.Source);
            if (_slots < maxSlots && source.Slots < maxSlotsPerSource)
            {
                Grant(ticket, source);
                return;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            ticket.Waiter = waiter;
            ticket.WaitNode = source.Waiting.AddLast(ticket);
            source.RoundRobin ??= _waitingSources.AddLast(source);
            _waiting++;
            granted = waiter.Task;

            if (_awaitingFinish.First is { } slowest && time.GetElapsedTime(slowest.Value.AwaitingFinishSince) >= finishGrace)
            {
                // Its slot goes to the waiters when its task releases it.
                _awaitingFinish.Remove(slowest);
                slowest.Value.FinishNode = null;
                cut = slowest.Value;
            }
        }

        cut?.Cut();
        try
        {
            await granted.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            lock (_gate)
            {
                StopWaiting(ticket);
            }

            throw;
        }
    }

    /// <summary>The server sent its ServerHello and now waits for the client's proof.</summary>
    public void AwaitingFinish(Ticket ticket)
    {
        lock (_gate)
        {
            if (ticket.HoldsSlot && ticket.FinishNode is null)
            {
                ticket.AwaitingFinishSince = time.GetTimestamp();
                ticket.FinishNode = _awaitingFinish.AddLast(ticket);
            }
        }
    }

    /// <summary>The flow left the handshake (handed over, refused, dropped, cut). Idempotent.</summary>
    public void Release(Ticket ticket)
    {
        List<TaskCompletionSource> grants = [];
        lock (_gate)
        {
            ReleaseLocked(ticket, grants);
        }

        foreach (var grant in grants)
        {
            grant.TrySetResult();
        }
    }

    private void ReleaseLocked(Ticket ticket, List<TaskCompletionSource> grants)
    {
        if (ticket.Released)
        {
            return;
        }

        ticket.Released = true;
        _admitted--;
        if (ticket.Node is { } node)
        {
            _unidentified.Remove(node);
            ticket.Node = null;
        }

        if (ticket.FinishNode is { } finish)
        {
            _awaitingFinish.Remove(finish);
            ticket.FinishNode = null;
        }

        StopWaiting(ticket);
        if (ticket.HoldsSlot)
        {
            ticket.HoldsSlot = false;
            _slots--;
            var source = _sources[ticket.Source];
            source.Slots--;
            Forget(source);
            GrantFreedSlots(grants);
        }
    }

    private void StopWaiting(Ticket ticket)
    {
        if (ticket.WaitNode is not { } waitNode)
        {
            return;
        }

        var source = _sources[ticket.Source];
        source.Waiting.Remove(waitNode);
        ticket.WaitNode = null;
        ticket.Waiter = null;
        _waiting--;
        Forget(source);
    }

    private void GrantFreedSlots(List<TaskCompletionSource> grants)
    {
        while (_slots < maxSlots)
        {
            // The first source in the round that is under its own bound gets the slot.
            Source? chosen = null;
            foreach (var source in _waitingSources)
            {
                if (source.Slots < maxSlotsPerSource)
                {
                    chosen = source;
                    break;
                }
            }

            if (chosen is null)
            {
                return;
            }

            var ticket = chosen.Waiting.First!.Value;
            chosen.Waiting.RemoveFirst();
            ticket.WaitNode = null;
            _waiting--;
            grants.Add(ticket.Waiter!);
            ticket.Waiter = null;
            Grant(ticket, chosen);

            // Its turn is over: to the back of the round, or out of it.
            _waitingSources.Remove(chosen.RoundRobin!);
            chosen.RoundRobin = chosen.Waiting.Count > 0 ? _waitingSources.AddLast(chosen) : null;
        }
    }

    private void Grant(Ticket ticket, Source source)
    {
        ticket.HoldsSlot = true;
        _slots++;
        source.Slots++;
    }

    private Source SourceOf(SourcePrefix prefix)
    {
        if (!_sources.TryGetValue(prefix, out var source))
        {
            source = new Source(prefix);
            _sources.Add(prefix, source);
        }

        return source;
    }

    private void Forget(Source source)
    {
        if (source.Waiting.Count == 0)
        {
            if (source.RoundRobin is { } node)
            {
                _waitingSources.Remove(node);
                source.RoundRobin = null;
            }

            if (source.Slots == 0)
            {
                _sources.Remove(source.Prefix);
            }
        }
    }

    private sealed class Source(SourcePrefix prefix)
    {
        public SourcePrefix Prefix { get; } = prefix;

        public int Slots { get; set; }

        public LinkedList<Ticket> Waiting { get; } = new();

        public LinkedListNode<Source>? RoundRobin { get; set; }
    }

    /// <summary>One admitted flow. Its fields belong to the admission's lock.</summary>
    internal sealed class Ticket(SourcePrefix source)
    {
        // Never disposed: it has no timer and nobody asks for its wait handle, so it holds nothing.
        private readonly CancellationTokenSource _cut = new();

        public SourcePrefix Source { get; } = source;

        /// <summary>Cancelled when the flow is evicted (idle at capacity) or cut (slow ClientFinish while others wait).</summary>
        public CancellationToken CutToken => _cut.Token;

        internal LinkedListNode<Ticket>? Node { get; set; }

        internal LinkedListNode<Ticket>? WaitNode { get; set; }

        internal LinkedListNode<Ticket>? FinishNode { get; set; }

        internal TaskCompletionSource? Waiter { get; set; }

        internal long AwaitingFinishSince { get; set; }

        internal bool HoldsSlot { get; set; }

        internal bool Released { get; set; }

        private volatile bool _isCut;

        /// <summary>The admission decided to cut this flow (its <see cref="CutToken"/> fires shortly after, on the thread pool).</summary>
        public bool IsCut => _isCut;

        /// <summary>Cancels on the thread pool: the caller (the accept loop) must not run the flow's cancellation itself.</summary>
        internal void Cut()
        {
            _isCut = true;
            ThreadPool.UnsafeQueueUserWorkItem(static cut => cut.Cancel(), _cut, preferLocal: false);
        }
    }
}
