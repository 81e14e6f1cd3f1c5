using System.Buffers.Binary;

namespace Mobility.Transport.Tests.Connections;

/// <summary><see cref="ConnectionPath"/> and <see cref="PathSet"/> on a <see cref="FakeTimeProvider"/>, over in-memory flows.</summary>
public sealed class PathTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));

    private static (ConnectionPath Path, MemoryFlow Flow) NewPath(bool established = true)
    {
        var flow = new MemoryFlow();
        return (new ConnectionPath(flow, flow.IncomingReader(), null, established), flow);
    }

    [Fact]
    public async Task Activating_a_second_path_retires_the_first_and_closes_its_flow()
    {
        var paths = new PathSet();
        var (first, firstFlow) = NewPath();
        var (second, secondFlow) = NewPath();
        paths.Activate(first);
        paths.Activate(second);
        Assert.Same(second, paths.Active);
        Assert.Equal((1, 2), (first.Id, second.Id));
        Assert.True(first.Cancellation.IsCancellationRequested);
        Assert.False(second.Cancellation.IsCancellationRequested);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, firstFlow.Aborts);
        Assert.Equal(0, secondFlow.Aborts);
        Assert.Equal(RejectReason.ResumeRefused, await first.ResumeResult.Task.WithTimeout());
    }

    [Fact]
    public async Task Standby_paths_are_bounded_and_the_oldest_makes_room_for_a_newer_one()
    {
        var paths = new PathSet();
        var (active, _) = NewPath();
        var (first, firstFlow) = NewPath();
        var (second, _) = NewPath();
        paths.Activate(active);
        Assert.Null(paths.AddStandby(first, max: 1));
        Assert.True(paths.IsStandby(first) && first.IsStandby);
        Assert.Same(first, paths.AddStandby(second, max: 1));
        Assert.Equal([second], paths.StandbySnapshot);
        Assert.False(paths.IsStandby(first));
        Assert.Same(active, paths.Active);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, firstFlow.Aborts);
    }

    [Fact]
    public async Task Promoting_the_standby_heard_from_last_retires_the_active_path_and_leaves_the_others_standing_by()
    {
        var paths = new PathSet();
        var (active, activeFlow) = NewPath();
        var (quiet, _) = NewPath();
        var (heard, _) = NewPath();
        var (joining, _) = NewPath(established: false);
        paths.Activate(active);
        paths.AddStandby(quiet, max: 3);
        paths.AddStandby(heard, max: 3);
        paths.AddStandby(joining, max: 3);
        quiet.LastReceived = 10;
        heard.LastReceived = 20;
        joining.LastReceived = 30;   // still joining: never chosen

        var best = paths.BestStandby();
        Assert.Same(heard, best);
        Assert.Same(active, paths.Promote(best!));
        Assert.Same(heard, paths.Active);
        Assert.False(heard.IsStandby);
        Assert.Equal([quiet, joining], paths.StandbySnapshot);

        // A failed standby leaves the set without touching the active path; the rest go when the connection ends.
        Assert.False(paths.Deactivate(quiet));
        Assert.Equal([joining], paths.StandbySnapshot);
        paths.DropStandbys();
        Assert.Empty(paths.StandbySnapshot);
        Assert.Null(paths.BestStandby());
        Assert.Same(heard, paths.Active);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, activeFlow.Aborts);
        Assert.True(joining.IsStopped && quiet.IsStopped && !heard.IsStopped);
    }

    [Fact]
    public async Task Deactivating_a_path_that_is_not_active_leaves_the_active_one_alone()
    {
        var paths = new PathSet();
        var (stale, staleFlow) = NewPath();
        var (active, _) = NewPath();
        paths.Activate(active);
        Assert.False(paths.Deactivate(stale));
        Assert.Same(active, paths.Active);
        Assert.True(paths.Deactivate(active));
        Assert.Null(paths.Active);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, staleFlow.Aborts);
    }

    [Fact]
    public async Task A_reset_that_cannot_be_written_closes_the_flow_after_the_bound_on_the_injected_clock()
    {
        var paths = new PathSet();
        var (path, flow) = NewPath();
        paths.Activate(path);
        paths.DeactivateWithReset(7, TimeSpan.FromMilliseconds(100), _time);
        Assert.Null(paths.Active);
        Assert.Equal(7U, path.Outbox.Reset);
        var retiring = Task.WhenAll(paths.Retiring());

        // No send loop writes it: nothing happens until the clock passes the bound.
        _time.Advance(TimeSpan.FromMilliseconds(99));
        await Task.Yield();
        Assert.False(retiring.IsCompleted);
        Assert.False(path.IsStopped);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await retiring.WithTimeout();
        Assert.True(path.IsStopped);
        Assert.Equal(1, flow.Aborts);
    }

    [Fact]
    public async Task A_reset_that_was_written_closes_the_flow_at_once()
    {
        var paths = new PathSet();
        var (path, flow) = NewPath();
        paths.Activate(path);
        paths.DeactivateWithReset(1, TimeSpan.FromMilliseconds(100), _time);
        path.ResetFlushed.TrySetResult(true);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, flow.Aborts);
    }

    [Fact]
    public async Task A_path_that_is_not_established_gets_no_reset()
    {
        var paths = new PathSet();
        var (path, flow) = NewPath(established: false);
        paths.Activate(path);
        paths.DeactivateWithReset(1, TimeSpan.FromMilliseconds(100), _time);
        Assert.Null(path.Outbox.Reset);
        await Task.WhenAll(paths.Retiring()).WithTimeout();
        Assert.Equal(1, flow.Aborts);
    }

    [Fact]
    public void A_pong_for_the_latest_ping_measures_the_paths_round_trip()
    {
        var (path, _) = NewPath();
        Assert.False(path.OnPong(0, _time.GetTimestamp(), _time));   // no ping yet
        path.PingId = 4;
        path.PingSentAt = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromMilliseconds(30));
        Assert.False(path.OnPong(3, _time.GetTimestamp(), _time));   // an older ping
        Assert.Null(path.Rtt);
        Assert.True(path.OnPong(4, _time.GetTimestamp(), _time));
        Assert.Equal(TimeSpan.FromMilliseconds(30), path.Rtt);
    }

    [Fact]
    public void A_path_awaits_an_answer_while_its_probe_is_newer_than_the_last_frame_heard()
    {
        var (path, _) = NewPath();
        path.LastReceived = 10;
        path.ProbeSince = 10;
        Assert.False(path.AwaitingAnswer);
        path.ProbeSince = 11;
        Assert.True(path.AwaitingAnswer);
        path.LastReceived = 12;
        Assert.False(path.AwaitingAnswer);
    }

    [Fact]
    public async Task Stopping_twice_closes_the_flow_once()
    {
        var (path, flow) = NewPath();
        var first = path.Stop();
        Assert.True(path.Stop().IsCompleted);
        await first.WithTimeout();
        Assert.Equal(1, flow.Aborts);
    }

    [Fact]
    public void A_reset_frame_is_the_same_bytes_whoever_seals_it()
    {
        // The send loop places bodies and seals them in place later: the result must equal Seal.
        var key = new byte[32];
        key[0] = 9;
        using var a = new FrameProtector(key, encrypt: true);
        using var b = new FrameProtector(key, encrypt: true);
        var body = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(body, 1);
        var sealedDirectly = new byte[TransportFrame.WireSize(4)];
        a.Seal(FrameType.Reset, 42, body, sealedDirectly);
        var inPlace = ArrayPool<byte>.Shared.Rent(64);
        body.CopyTo(inPlace.AsSpan(TransportConstants.FrameHeaderSize));
        var size = b.SealInPlace(FrameType.Reset, 42, 4, inPlace);
        Assert.Equal(sealedDirectly, inPlace[..size]);
        ArrayPool<byte>.Shared.Return(inPlace);
    }
}
