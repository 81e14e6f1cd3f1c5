using System.Buffers;
using System.IO.Pipelines;

namespace Mobility.Transport.Internal;

/// <summary>
/// The buffers one flow's <see cref="PipeReader"/> reads into: 64 KiB until <see cref="StartBulk"/>, 256 KiB after
/// (both size classes of the shared array pool). Each read's frames are one trip to the connection's loop and back, so
/// larger reads are fewer trips per byte in bulk, and fewer 32 KiB frames straddle two buffers (those are copied before
/// they are opened). A listener's flows start small: a peer that stalls inside its handshake holds at most 64 KiB, as
/// before; they switch once the peer is authenticated. The reader issues a zero-byte read whenever it has nothing
/// buffered, so an idle flow holds no buffer at all (ten thousand idle connections would otherwise pin 2.5 GiB).
/// </summary>
internal sealed class FlowReadBuffers : MemoryPool<byte>
{
    public const int HandshakeSize = 64 * 1024;

    public const int BulkSize = 256 * 1024;

    private volatile bool _bulk;

    public FlowReadBuffers(bool bulk) => _bulk = bulk;

    public bool Bulk => _bulk;

    public override int MaxBufferSize => BulkSize;

    /// <summary>A reader of <paramref name="stream"/> over new buffers (large from the start with <paramref name="bulk"/>).</summary>
    public static PipeReader CreateReader(Stream stream, bool bulk) => new FlowReadBuffers(bulk).CreateReader(stream);

    public PipeReader CreateReader(Stream stream)
        => PipeReader.Create(stream, new StreamPipeReaderOptions(pool: this, bufferSize: HandshakeSize, minimumReadSize: 16 * 1024, leaveOpen: true,
            useZeroByteReads: true));

    /// <summary>Buffers taken from now on are <see cref="BulkSize"/> (the one in use stays until it is read out).</summary>
    public void StartBulk() => _bulk = true;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
        => new Lease(ArrayPool<byte>.Shared.Rent(Math.Max(minBufferSize, _bulk ? BulkSize : HandshakeSize)));

    protected override void Dispose(bool disposing)
    {
        // Nothing held: each buffer goes back to the shared pool when the reader releases it.
    }

    private sealed class Lease(byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(FlowReadBuffers));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } returned)
            {
                ArrayPool<byte>.Shared.Return(returned);
            }
        }
    }
}
