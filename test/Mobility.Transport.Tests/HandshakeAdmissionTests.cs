using Mobility.Transport.Handshakes;

namespace Mobility.Transport.Tests;

/// <summary>The listener's admission rules, driven without sockets on a fake clock.</summary>
public sealed class HandshakeAdmissionTests
{
    private static readonly SourcePrefix A = SourcePrefix.Of(IPAddress.Parse("192.0.2.1"));
    private static readonly SourcePrefix B = SourcePrefix.Of(IPAddress.Parse("192.0.2.2"));
    private static readonly SourcePrefix C = SourcePrefix.Of(IPAddress.Parse("192.0.2.3"));

    private static HandshakeAdmission Admission(int capacity = 8, int slots = 4, int perSource = 2, int cookieThreshold = 3, FakeTimeProvider? time = null)
        => new(capacity, slots, perSource, cookieThreshold, TimeSpan.FromMilliseconds(250), time ?? new FakeTimeProvider());

    private static HandshakeAdmission.Ticket Hello(HandshakeAdmission admission, SourcePrefix source)
    {
        var ticket = admission.TryAdmit(source)!;
        admission.Identified(ticket);
        return ticket;
    }

    [Fact]
    public void Sources_are_ipv4_addresses_and_ipv6_slash_64s()
    {
        Assert.Equal(SourcePrefix.Of(IPAddress.Parse("2001:db8:1:2::1")), SourcePrefix.Of(IPAddress.Parse("2001:db8:1:2:ffff:1:2:3")));
        Assert.NotEqual(SourcePrefix.Of(IPAddress.Parse("2001:db8:1:2::1")), SourcePrefix.Of(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.Equal(SourcePrefix.Of(IPAddress.Parse("127.0.0.1")), SourcePrefix.Of(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.NotEqual(SourcePrefix.Of(IPAddress.Parse("127.0.0.1")), SourcePrefix.Of(IPAddress.Parse("127.0.0.2")));
        Assert.Equal("127.0.0.2", SourcePrefix.Of(IPAddress.Parse("127.0.0.2")).ToString());
        Assert.Equal("2001:db8:1:2::/64", SourcePrefix.Of(IPAddress.Parse("2001:db8:1:2::9")).ToString());
    }

    [Fact]
    public async Task At_capacity_a_new_flow_evicts_the_oldest_idle_one_instead_of_being_refused()
    {
        var admission = Admission(capacity: 3);
        var idle = Enumerable.Range(0, 3).Select(_ => admission.TryAdmit(A)!).ToArray();
        var fresh = admission.TryAdmit(B);

        Assert.NotNull(fresh);
        Assert.True(idle[0].IsCut);
        Assert.False(idle[1].IsCut);
        await TestTimeout.Eventually(() => idle[0].CutToken.IsCancellationRequested, "the evicted flow's token fires");
        Assert.False(idle[1].CutToken.IsCancellationRequested);
        Assert.Equal(3, admission.Admitted);
        Assert.Equal(3, admission.Unidentified);

        // The evicted flow's own release (when its task ends) changes nothing more.
        admission.Release(idle[0]);
        Assert.Equal(3, admission.Admitted);
    }

    [Fact]
    public void A_flow_that_has_spoken_is_not_evicted_and_when_all_have_spoken_new_ones_are_refused()
    {
        var admission = Admission(capacity: 2);
        var first = Hello(admission, A);
        var second = Hello(admission, B);

        Assert.Null(admission.TryAdmit(C));
        Assert.False(first.IsCut);
        Assert.False(second.IsCut);

        admission.Release(first);
        Assert.NotNull(admission.TryAdmit(C));
    }

    [Fact]
    public async Task Slots_are_bounded_per_source_and_freed_slots_go_round_robin()
    {
        var admission = Admission(capacity: 16, slots: 3, perSource: 2);
        var a = Enumerable.Range(0, 4).Select(_ => Hello(admission, A)).ToArray();
        var b = Enumerable.Range(0, 2).Select(_ => Hello(admission, B)).ToArray();

        await admission.AcquireSlotAsync(a[0], CancellationToken.None).WithTimeout();
        await admission.AcquireSlotAsync(a[1], CancellationToken.None).WithTimeout();
        var a2 = admission.AcquireSlotAsync(a[2], CancellationToken.None).AsTask();   // A is at its own bound
        await admission.AcquireSlotAsync(b[0], CancellationToken.None).WithTimeout();   // the last free slot goes to B
        var a3 = admission.AcquireSlotAsync(a[3], CancellationToken.None).AsTask();
        var b1 = admission.AcquireSlotAsync(b[1], CancellationToken.None).AsTask();
        Assert.Equal(3, admission.Slots);
        Assert.Equal(3, admission.Waiting);
        Assert.False(a2.IsCompleted);

        // An A slot frees: A waited first, so A's next hello gets it.
        admission.Release(a[0]);
        await a2.WithTimeout();
        Assert.False(b1.IsCompleted);

        // A B slot frees: B is under its bound and A went last, so B's turn.
        admission.Release(b[0]);
        await b1.WithTimeout();
        Assert.False(a3.IsCompleted);

        admission.Release(a[1]);
        await a3.WithTimeout();
        Assert.Equal(0, admission.Waiting);
        Assert.Equal(3, admission.Slots);
    }

    [Fact]
    public async Task A_cancelled_wait_leaves_the_queue_and_takes_no_slot()
    {
        var admission = Admission(capacity: 8, slots: 1, perSource: 1);
        var holder = Hello(admission, A);
        await admission.AcquireSlotAsync(holder, CancellationToken.None).WithTimeout();
        var waiter = Hello(admission, B);
        using var cancel = new CancellationTokenSource();
        var wait = admission.AcquireSlotAsync(waiter, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WithTimeout());
        Assert.Equal(0, admission.Waiting);
        admission.Release(waiter);

        admission.Release(holder);
        Assert.Equal(0, admission.Slots);
        Assert.Equal(0, admission.Admitted);
    }

    [Fact]
    public async Task Under_load_from_the_threshold_of_hellos_holding_or_waiting_for_slots()
    {
        var admission = Admission(capacity: 8, slots: 2, perSource: 2, cookieThreshold: 3);
        var hellos = Enumerable.Range(0, 3).Select(_ => Hello(admission, A)).ToArray();
        await admission.AcquireSlotAsync(hellos[0], CancellationToken.None).WithTimeout();
        await admission.AcquireSlotAsync(hellos[1], CancellationToken.None).WithTimeout();
        Assert.False(admission.UnderLoad);
        _ = admission.AcquireSlotAsync(hellos[2], CancellationToken.None).AsTask();
        Assert.True(admission.UnderLoad);
        admission.Release(hellos[0]);
        admission.Release(hellos[1]);
        Assert.False(admission.UnderLoad);
    }

    [Fact]
    public async Task A_slot_holder_slow_to_finish_is_cut_only_past_the_grace_and_only_when_someone_waits()
    {
        var time = new FakeTimeProvider();
        var admission = Admission(capacity: 8, slots: 1, perSource: 1, time: time);
        var halfDone = Hello(admission, A);
        await admission.AcquireSlotAsync(halfDone, CancellationToken.None).WithTimeout();
        admission.AwaitingFinish(halfDone);

        // Within the grace: the newcomer waits and the holder keeps its slot.
        time.Advance(TimeSpan.FromMilliseconds(200));
        var early = Hello(admission, B);
        var earlyWait = admission.AcquireSlotAsync(early, CancellationToken.None).AsTask();
        Assert.False(halfDone.IsCut);
        admission.Release(early);
        Assert.Equal(0, admission.Waiting);

        // Past it, nobody waiting: still kept.
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(halfDone.IsCut);

        // Past it with a waiter: cut, and its slot goes to the waiter once it is released.
        var late = Hello(admission, C);
        var lateWait = admission.AcquireSlotAsync(late, CancellationToken.None).AsTask();
        Assert.True(halfDone.IsCut);
        admission.Release(halfDone);
        await lateWait.WithTimeout();
        Assert.Equal(1, admission.Slots);
        Assert.False(earlyWait.IsCompletedSuccessfully);
    }
}
