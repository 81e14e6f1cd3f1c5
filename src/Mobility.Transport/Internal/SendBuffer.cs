using System.Buffers;

namespace Mobility.Transport.Internal;

/// <summary>
/// Bytes written by the application and not yet acknowledged by the peer, addressed by stream
/// offset: [<see cref="Start"/>, <see cref="End"/>). Stored in pooled 64 KiB chunks, so memory
/// follows what is in flight, not the configured limit. Not thread-safe (the connection's lock guards it).
/// </summary>
internal sealed class SendBuffer
{
    private const int ChunkSize = 64 * 1024;
    private readonly List<byte[]> _chunks = [];
    private int _headSkip; // bytes of the first chunk already released

    public long Start { get; private set; }

    public long End { get; private set; }

    public long Length => End - Start;

    public void Append(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var used = (int)((_headSkip + Length) % ChunkSize);
            if (used == 0 && (_headSkip + Length) / ChunkSize >= _chunks.Count)
            {
                _chunks.Add(ArrayPool<byte>.Shared.Rent(ChunkSize));
            }

            var chunk = _chunks[(int)((_headSkip + Length) / ChunkSize)];
            var n = Math.Min(ChunkSize - used, data.Length);
            data[..n].CopyTo(chunk.AsSpan(used, n));
            End += n;
            data = data[n..];
        }
    }

    /// <summary>Copies bytes starting at stream offset <paramref name="offset"/> into <paramref name="destination"/>.</summary>
    public void CopyTo(long offset, Span<byte> destination)
    {
        if (offset < Start || offset + destination.Length > End)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + destination.Length}) not within [{Start}, {End}).");
        }

        var position = _headSkip + (offset - Start);
        while (!destination.IsEmpty)
        {
            var chunk = _chunks[(int)(position / ChunkSize)];
            var within = (int)(position % ChunkSize);
            var n = Math.Min(ChunkSize - within, destination.Length);
            chunk.AsSpan(within, n).CopyTo(destination);
            destination = destination[n..];
            position += n;
        }
    }

    /// <summary>Drops everything before <paramref name="offset"/> (acknowledged by the peer).</summary>
    public void ReleaseTo(long offset)
    {
        if (offset <= Start)
        {
            return;
        }

        offset = Math.Min(offset, End);
        var skip = _headSkip + (offset - Start);
        var whole = (int)(skip / ChunkSize);
        for (var i = 0; i < whole; i++)
        {
            ArrayPool<byte>.Shared.Return(_chunks[i]);
        }

        _chunks.RemoveRange(0, whole);
        _headSkip = (int)(skip % ChunkSize);
        Start = offset;
        if (Length == 0 && _chunks.Count > 0 && _headSkip == 0)
        {
            // Keep one chunk for the next write; nothing else to do.
        }
    }

    public void Clear()
    {
        foreach (var chunk in _chunks)
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        _chunks.Clear();
        _headSkip = 0;
        Start = End;
    }
}
