using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Mobility.Transport;

namespace Mobility.Cli.Demo;

/// <summary>
/// A pseudo-random byte stream that never repeats (SplitMix64 over a counter): cheap enough not to
/// be the bottleneck, and a reordered, lost or duplicated block changes the receiver's hash.
/// </summary>
public struct PseudoRandomBytes(ulong seed)
{
    private ulong _state = seed;

    /// <summary>Fills <paramref name="buffer"/>, whose length must be a multiple of 8.</summary>
    public void Fill(Span<byte> buffer)
    {
        if (buffer.Length % sizeof(ulong) != 0)
        {
            throw new ArgumentException("The length must be a multiple of 8.", nameof(buffer));
        }

        for (var i = 0; i < buffer.Length; i += sizeof(ulong))
        {
            _state += 0x9E3779B97F4A7C15UL;
            var z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[i..], z ^ (z >> 31));
        }
    }
}

/// <summary>
/// The two ends of the demo's stream. The sender writes pseudo-random data into the mobile
/// connection and hashes what it wrote; the receiver hashes what it read and stamps every read, so
/// a move's stall is seen where an application sees it. Memory is two buffers, whatever the length.
/// </summary>
public sealed class DemoTraffic
{
    /// <summary>Bytes per write and per read: large enough for bulk speed, small enough for a fine time resolution.</summary>
    public const int ChunkSize = 64 * 1024;

    private long _sent;
    private long _received;
    private long _lastReadAt;
    private int _stopRequested;

    /// <summary>Bytes the sender handed to the connection.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Bytes the receiver read.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>When the receiver last read (Stopwatch timestamp; 0 before the first read).</summary>
    public long LastReadAt => Interlocked.Read(ref _lastReadAt);

    public byte[]? SentHash { get; private set; }

    public byte[]? ReceivedHash { get; private set; }

    /// <summary>Set when the receiver saw the end of the stream (FIN after all data).</summary>
    public long? EndedAt { get; private set; }

    /// <summary>Asks the sender to stop after its current write (a duration-bound run).</summary>
    public void RequestStop() => Interlocked.Exchange(ref _stopRequested, 1);

    /// <summary>
    /// Writes until <see cref="RequestStop"/> or <paramref name="size"/> bytes (when positive), then
    /// closes the connection gracefully (both FINs acknowledged).
    /// </summary>
    public async Task SendAsync(MobileConnection connection, ulong seed, long size, TimeSpan closeTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var buffer = new byte[ChunkSize];
        var source = new PseudoRandomBytes(seed);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        while (Volatile.Read(ref _stopRequested) == 0 && (size <= 0 || _sent < size))
        {
            var n = size <= 0 ? ChunkSize : (int)Math.Min(ChunkSize, size - _sent);
            source.Fill(buffer);
            hash.AppendData(buffer, 0, n);
            // Not cancelled mid-write: a write that stopped half-way would make "sent" a guess.
            await connection.WriteAsync(buffer.AsMemory(0, n), CancellationToken.None).AsTask().WaitAsync(cancellationToken);
            Interlocked.Add(ref _sent, n);
        }

        SentHash = hash.GetHashAndReset();
        using var close = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        close.CancelAfter(closeTimeout);
        await connection.CloseAsync(close.Token);
    }

    /// <summary>
    /// Reads until the end of the stream, calling <paramref name="onRead"/> after every read with its
    /// time, the time of the read before and the bytes read so far; then closes its own side.
    /// </summary>
    public async Task ReceiveAsync(MobileConnection connection, Action<long, long, long> onRead, TimeSpan closeTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(onRead);
        var buffer = new byte[ChunkSize];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        int n;
        while ((n = await connection.ReadAsync(buffer, cancellationToken)) > 0)
        {
            var now = Stopwatch.GetTimestamp();
            hash.AppendData(buffer, 0, n);
            var total = Interlocked.Add(ref _received, n);
            var previous = Interlocked.Exchange(ref _lastReadAt, now);
            onRead(now, previous, total);
        }

        EndedAt = Stopwatch.GetTimestamp();
        ReceivedHash = hash.GetHashAndReset();
        using var close = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        close.CancelAfter(closeTimeout);
        await connection.CloseAsync(close.Token);
    }
}
