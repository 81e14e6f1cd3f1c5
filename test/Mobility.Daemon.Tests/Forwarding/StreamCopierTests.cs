using System.IO.Pipelines;
using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Forwarding;

namespace Mobility.Daemon.Tests.Forwarding;

/// <summary>The relay copier on in-memory pipes (no sockets): half-close, idle timeout on virtual time, failure reporting.</summary>
public sealed class StreamCopierTests
{
    [Fact]
    public async Task Bytes_flow_both_ways_and_each_end_of_stream_becomes_a_half_close()
    {
        var a = new End();
        var b = new End();
        var relay = StreamCopier.RelayAsync(a.Side, b.Side, TimeSpan.FromHours(1), TimeProvider.System, CancellationToken.None);
        var up = RandomNumberGenerator.GetBytes(200_000);
        var down = RandomNumberGenerator.GetBytes(50_000);

        var atB = b.Peer.ReadAllAsync();
        await a.Peer.Output.WriteAsync(up).AsTask().WithTimeout();
        await a.Peer.Output.CompleteAsync().AsTask().WithTimeout();
        Assert.Equal(up, await atB.WithTimeout());
        Assert.True(b.ShutDown);
        Assert.False(a.ShutDown);

        var atA = a.Peer.ReadAllAsync();
        await b.Peer.Output.WriteAsync(down).AsTask().WithTimeout();
        await b.Peer.Output.CompleteAsync().AsTask().WithTimeout();
        Assert.Equal(down, await atA.WithTimeout());
        Assert.Equal((CopyResult.Success, CopyResult.Success), await relay.WithTimeout());
        Assert.True(a.ShutDown);
    }

    [Fact]
    public async Task A_relay_without_progress_ends_as_idle_and_progress_resets_the_timer()
    {
        var time = new FakeTimeProvider();
        var a = new End();
        var b = new End();
        var relay = StreamCopier.RelayAsync(a.Side, b.Side, TimeSpan.FromMinutes(1), time, CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(50));
        await a.Peer.Output.WriteAsync(new byte[] { 1, 2, 3 }).AsTask().WithTimeout();
        var read = await b.Peer.Input.ReadAsync().AsTask().WithTimeout();
        Assert.Equal(3, read.Buffer.Length);
        b.Peer.Input.AdvanceTo(read.Buffer.End);
        time.Advance(TimeSpan.FromSeconds(50));
        Assert.False(relay.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal((CopyResult.Idle, CopyResult.Idle), await relay.WithTimeout());
    }

    [Fact]
    public async Task A_failing_source_is_reported_and_stops_the_other_direction()
    {
        var a = new End();
        var b = new End();
        var relay = StreamCopier.RelayAsync(a.Side, b.Side, TimeSpan.FromHours(1), TimeProvider.System, CancellationToken.None);
        await a.Peer.Output.CompleteAsync(new IOException("reset")).AsTask().WithTimeout();
        var (aToB, bToA) = await relay.WithTimeout();
        Assert.Equal(CopyResult.SourceFailed, aToB);
        Assert.Equal(CopyResult.Canceled, bToA);
    }

    [Fact]
    public async Task A_source_that_says_more_is_buffered_is_read_again_without_a_zero_byte_read_and_every_byte_arrives()
    {
        // 40 chunks of 10,000 bytes, each read short of the buffer; the source says another is there until the last.
        var data = RandomNumberGenerator.GetBytes(400_000);
        var source = new ChunkedSource(data, 10_000);
        var sink = new RecordingSink();
        var ended = false;
        var a = new RelaySide(source, () => { }, () => source.Remaining > 0);
        var b = new RelaySide(new DuplexStream(new ChunkedSource([], 1), sink), () => ended = true);

        var (aToB, _) = await StreamCopier.RelayAsync(a, b, TimeSpan.FromHours(1), TimeProvider.System, CancellationToken.None).WithTimeout();

        Assert.Equal(CopyResult.Success, aToB);
        Assert.True(ended);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(sink.Bytes.ToArray()));
        // One zero-byte read before the first bytes and one after the last chunk; none between chunks.
        Assert.Equal(2, source.ZeroByteReads);
    }

    [Fact]
    public async Task Without_the_hint_a_short_read_gives_the_buffer_back_and_waits_with_a_zero_byte_read()
    {
        var data = RandomNumberGenerator.GetBytes(50_000);
        var source = new ChunkedSource(data, 10_000);
        var sink = new RecordingSink();
        var (aToB, _) = await StreamCopier.RelayAsync(new RelaySide(source, () => { }),
            new RelaySide(new DuplexStream(new ChunkedSource([], 1), sink), () => { }), TimeSpan.FromHours(1), TimeProvider.System,
            CancellationToken.None).WithTimeout();

        Assert.Equal(CopyResult.Success, aToB);
        Assert.Equal(data, sink.Bytes.ToArray());
        Assert.Equal(6, source.ZeroByteReads);
    }

    [Fact]
    public async Task A_bulk_source_is_copied_in_writes_of_up_to_the_buffer_size()
    {
        var data = RandomNumberGenerator.GetBytes(1024 * 1024);
        var sink = new RecordingSink();
        var (aToB, _) = await StreamCopier.RelayAsync(new RelaySide(new ChunkedSource(data, data.Length), () => { }),
            new RelaySide(new DuplexStream(new ChunkedSource([], 1), sink), () => { }), TimeSpan.FromHours(1), TimeProvider.System,
            CancellationToken.None).WithTimeout();

        Assert.Equal(CopyResult.Success, aToB);
        Assert.Equal(data, sink.Bytes.ToArray());
        Assert.Equal(256 * 1024, StreamCopier.BufferSize);
        Assert.Equal(StreamCopier.BufferSize, sink.LargestWrite);
        Assert.Equal(data.Length / StreamCopier.BufferSize, sink.Writes);
    }

    [Fact]
    public async Task A_failing_destination_is_reported_and_stops_the_other_direction()
    {
        var a = new End();
        var broken = new RelaySide(new DuplexStream(new ChunkedSource([], 1) { Hold = true }, new FailingSink()), () => { });
        var relay = StreamCopier.RelayAsync(a.Side, broken, TimeSpan.FromHours(1), TimeProvider.System, CancellationToken.None);
        await a.Peer.Output.WriteAsync(new byte[] { 1, 2, 3 }).AsTask().WithTimeout();
        var (aToB, bToA) = await relay.WithTimeout();
        Assert.Equal(CopyResult.DestinationFailed, aToB);
        Assert.Equal(CopyResult.Canceled, bToA);
    }

    /// <summary>A source that hands out <c>chunk</c> bytes per read (whatever the buffer) and counts zero-byte reads; <see cref="Hold"/>: never ends.</summary>
    private sealed class ChunkedSource(byte[] data, int chunk) : Stream
    {
        private int _position;

        public int ZeroByteReads { get; private set; }

        public int Remaining => data.Length - _position;

        public bool Hold { get; init; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Hold)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            await Task.Yield();
            if (buffer.IsEmpty)
            {
                ZeroByteReads++;
                return 0;
            }

            var n = Math.Min(Math.Min(chunk, buffer.Length), Remaining);
            data.AsSpan(_position, n).CopyTo(buffer.Span);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A destination that keeps every byte and counts the writes.</summary>
    private class RecordingSink : Stream
    {
        public MemoryStream Bytes { get; } = new();

        public int Writes { get; private set; }

        public int LargestWrite { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes++;
            LargestWrite = Math.Max(LargestWrite, buffer.Length);
            Bytes.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed class FailingSink : RecordingSink
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            => ValueTask.FromException(new IOException("broken pipe"));
    }

    /// <summary>One side of the relay: a duplex stream over two pipes, with the far end for the test.</summary>
    private sealed class End
    {
        private readonly Pipe _toRelay = new();
        private readonly Pipe _fromRelay = new();

        public End()
        {
            Side = new RelaySide(new DuplexStream(_toRelay.Reader.AsStream(), _fromRelay.Writer.AsStream()), () =>
            {
                ShutDown = true;
                _fromRelay.Writer.Complete();
            });
            Peer = new FarEnd(_fromRelay.Reader, _toRelay.Writer);
        }

        public RelaySide Side { get; }

        public FarEnd Peer { get; }

        public bool ShutDown { get; private set; }
    }

    private sealed record FarEnd(PipeReader Input, PipeWriter Output)
    {
        public async Task<byte[]> ReadAllAsync()
        {
            using var all = new MemoryStream();
            await Input.CopyToAsync(all);
            return all.ToArray();
        }
    }

    private sealed class DuplexStream(Stream read, Stream write) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => write.Flush();

        public override int Read(byte[] buffer, int offset, int count) => read.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => read.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => write.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => write.WriteAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
