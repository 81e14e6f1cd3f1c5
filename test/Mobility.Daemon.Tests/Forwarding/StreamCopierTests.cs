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
