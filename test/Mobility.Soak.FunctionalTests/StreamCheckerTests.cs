using Mobility.Netlab.Soak;

namespace Mobility.Soak.FunctionalTests;

/// <summary>The soak's verdict is only as good as its checker: each fault it must see, fed to it directly.</summary>
public sealed class StreamCheckerTests
{
    private const ulong Seed = 42;

    private static byte[] Blocks(ulong first, int count)
    {
        var buffer = new byte[count * CheckedStream.BlockSize];
        CheckedStream.Fill(buffer, Seed, first);
        return buffer;
    }

    [Fact]
    public void An_intact_stream_split_anywhere_is_all_in_order()
    {
        var data = Blocks(0, 1000);
        var checker = new StreamChecker(Seed);
        for (var at = 0; at < data.Length;)
        {
            var n = Math.Min(data.Length - at, 1 + (at % 37));
            checker.Add(data.AsSpan(at, n));
            at += n;
        }

        checker.Finish(data.Length);
        Assert.Equal((ulong)1000, checker.Next);
        Assert.Equal(data.Length, checker.Received);
        Assert.Equal(0, checker.Lost + checker.Duplicated + checker.Corrupt);
        Assert.Equal(-1, checker.FirstAnomalyAt);
    }

    [Fact]
    public void A_missing_block_is_lost_and_a_repeated_one_duplicated()
    {
        var checker = new StreamChecker(Seed);
        checker.Add(Blocks(0, 10));
        checker.Add(Blocks(12, 3)); // blocks 10 and 11 never came
        checker.Add(Blocks(13, 2)); // 13 and 14 again
        checker.Finish(15 * CheckedStream.BlockSize);

        Assert.Equal(2 * CheckedStream.BlockSize, checker.Lost);
        Assert.Equal(2 * CheckedStream.BlockSize, checker.Duplicated);
        Assert.Equal(0, checker.Corrupt);
        Assert.Equal(11 * CheckedStream.BlockSize, checker.FirstAnomalyAt);
    }

    [Fact]
    public void A_few_bytes_dropped_mid_block_are_found_and_the_checker_resynchronises()
    {
        var data = Blocks(0, 20);
        var damaged = data.AsSpan(0, (5 * CheckedStream.BlockSize) + 3).ToArray().Concat(data[(6 * CheckedStream.BlockSize)..]).ToArray();
        var checker = new StreamChecker(Seed);
        checker.Add(damaged);
        checker.Finish(data.Length);

        // Block 5 was cut: lost as a block, its 3 surviving bytes are corrupt, and blocks 6.. are in order again.
        Assert.Equal(CheckedStream.BlockSize, checker.Lost);
        Assert.Equal(3, checker.Corrupt);
        Assert.Equal(0, checker.Duplicated);
        Assert.Equal((ulong)20, checker.Next);
    }

    [Fact]
    public void A_stream_that_ends_early_has_its_tail_lost()
    {
        var checker = new StreamChecker(Seed);
        checker.Add(Blocks(0, 4));
        checker.Finish(10 * CheckedStream.BlockSize);
        Assert.Equal(6 * CheckedStream.BlockSize, checker.Lost);
    }
}
