using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Transport.Connections;

namespace Mobility.Transport.Tests.Connections;

/// <summary>The move timeline on a <see cref="FakeTimeProvider"/>: offsets, which events open and close a move, bounds.</summary>
public sealed class MoveTimelineTests
{
    private static (MoveTimeline Timeline, FakeTimeProvider Time) Create()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));
        return (new MoveTimeline(time, NullLogger.Instance, 7), time);
    }

    [Fact]
    public void Each_event_is_dated_from_the_moves_first_event_on_the_injected_clock()
    {
        var (timeline, time) = Create();
        var start = time.GetUtcNow();
        timeline.Record(MoveEventKind.AddressEvent, "10.0.0.2");
        time.Advance(TimeSpan.FromMilliseconds(5));
        timeline.Record(MoveEventKind.PathDead, "local address changed");
        time.Advance(TimeSpan.FromMilliseconds(1));
        timeline.Record(MoveEventKind.ConnectStarted, "10.0.9.2:7391");
        time.Advance(TimeSpan.FromMilliseconds(50));
        timeline.Record(MoveEventKind.ConnectFinished);
        timeline.Record(MoveEventKind.ResumeSent);
        time.Advance(TimeSpan.FromMilliseconds(50));
        timeline.Record(MoveEventKind.ResumeAnswered);
        time.Advance(TimeSpan.FromMilliseconds(25));
        timeline.Record(MoveEventKind.FirstByteDelivered, "1024 bytes");

        var move = Assert.Single(timeline.Snapshot());
        Assert.Equal(start, move.StartedAt);
        Assert.Equal(
            [(MoveEventKind.AddressEvent, 0.0), (MoveEventKind.PathDead, 5), (MoveEventKind.ConnectStarted, 6), (MoveEventKind.ConnectFinished, 56),
             (MoveEventKind.ResumeSent, 56), (MoveEventKind.ResumeAnswered, 106), (MoveEventKind.FirstByteDelivered, 131)],
            move.Events.Select(e => (e.Kind, e.At.TotalMilliseconds)));
        Assert.Equal("10.0.0.2", move.Events[0].Detail);
        Assert.Equal(TimeSpan.FromMilliseconds(106), move.ResumedAfter);
    }

    [Fact]
    public void Events_outside_a_move_are_ignored_and_a_second_address_event_before_the_resume_stays_in_the_same_move()
    {
        var (timeline, time) = Create();
        timeline.Record(MoveEventKind.ConnectStarted, "the first connect");
        timeline.Record(MoveEventKind.FirstByteDelivered);
        Assert.Empty(timeline.Snapshot());

        timeline.Record(MoveEventKind.AddressEvent, "[]");
        time.Advance(TimeSpan.FromMilliseconds(5));
        timeline.Record(MoveEventKind.AddressEvent, "[new]");
        timeline.Record(MoveEventKind.FirstByteDelivered);   // not resumed yet: not the move's first byte
        var move = Assert.Single(timeline.Snapshot());
        Assert.Equal([MoveEventKind.AddressEvent, MoveEventKind.AddressEvent], move.Events.Select(e => e.Kind));
        Assert.Null(move.ResumedAfter);
    }

    [Fact]
    public void A_resumed_move_ends_with_its_first_byte_or_with_the_next_move()
    {
        var (timeline, time) = Create();
        timeline.Record(MoveEventKind.PathDead, "a");
        timeline.Record(MoveEventKind.ResumeAnswered);
        time.Advance(TimeSpan.FromSeconds(1));
        timeline.Record(MoveEventKind.PathDead, "b");          // no first byte came: a new move
        timeline.Record(MoveEventKind.ResumeAnswered);
        timeline.Record(MoveEventKind.FirstByteDelivered);
        timeline.Record(MoveEventKind.FirstByteDelivered);    // after the move closed: ignored
        timeline.Record(MoveEventKind.ResumeAnswered);         // a server's Resume with no dead path seen: a move of its own

        var moves = timeline.Snapshot();
        Assert.Equal(3, moves.Count);
        Assert.Equal([MoveEventKind.PathDead, MoveEventKind.ResumeAnswered], moves[0].Events.Select(e => e.Kind));
        Assert.Equal([MoveEventKind.PathDead, MoveEventKind.ResumeAnswered, MoveEventKind.FirstByteDelivered], moves[1].Events.Select(e => e.Kind));
        Assert.Equal([MoveEventKind.ResumeAnswered], moves[2].Events.Select(e => e.Kind));
        Assert.Equal(moves[0].StartedAt + TimeSpan.FromSeconds(1), moves[1].StartedAt);
    }

    [Fact]
    public void Only_the_last_moves_and_a_bounded_number_of_events_per_move_are_kept()
    {
        var (timeline, time) = Create();
        for (var i = 0; i < MoveTimeline.MaxMoves + 5; i++)
        {
            timeline.Record(MoveEventKind.PathDead, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            timeline.Record(MoveEventKind.ResumeAnswered);
            time.Advance(TimeSpan.FromMilliseconds(10));
        }

        var moves = timeline.Snapshot();
        Assert.Equal(MoveTimeline.MaxMoves, moves.Count);
        Assert.Equal("5", moves[0].Events[0].Detail);   // the oldest five are gone

        timeline.Record(MoveEventKind.AddressEvent);
        for (var i = 0; i < MoveTimeline.MaxEventsPerMove + 10; i++)
        {
            timeline.Record(MoveEventKind.AttemptFailed);
        }

        var last = timeline.Snapshot()[^1];
        Assert.Equal(MoveTimeline.MaxEventsPerMove, last.Events.Count);
        Assert.Equal(11, last.EventsDropped);
    }
}
