using System.IO.Pipelines;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// An in-memory flow for unit tests of path types: what the path writes can be read from
/// <see cref="Sent"/>; <see cref="Abort"/> is counted. No sockets, no clock.
/// </summary>
internal sealed class MemoryFlow : IFlow
{
    private readonly Pipe _outgoing = new();
    private readonly Pipe _incoming = new();
    private int _aborts;

    public MemoryFlow()
    {
        Stream = new DuplexPipeStream(_incoming.Reader, _outgoing.Writer);
    }

    public Stream Stream { get; }

    public PipeReader Sent => _outgoing.Reader;

    public IPEndPoint? LocalEndPoint { get; } = new(IPAddress.Loopback, 40000);

    public IPEndPoint? RemoteEndPoint { get; } = new(IPAddress.Loopback, 443);

    public int Aborts => Volatile.Read(ref _aborts);

    public TimeSpan? SmoothedRtt { get; init; }

    public void Abort()
    {
        Interlocked.Increment(ref _aborts);
        _incoming.Writer.Complete();
        _outgoing.Writer.Complete();
    }

    public ValueTask DisposeAsync()
    {
        Abort();
        return ValueTask.CompletedTask;
    }

    public PipeReader IncomingReader() => _incoming.Reader;

    /// <summary>Where a test plays the peer: bytes written here are what the path reads.</summary>
    public PipeWriter Incoming => _incoming.Writer;

    /// <summary>A stream that reads from one pipe and writes to another.</summary>
    internal sealed class DuplexPipeStream(PipeReader reader, PipeWriter writer) : Stream
    {
        private readonly Stream _read = reader.AsStream();
        private readonly Stream _write = writer.AsStream();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => _write.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => _write.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => _read.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _read.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => _write.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _write.WriteAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
