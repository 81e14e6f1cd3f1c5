using Mobility.Netlab.Soak;

namespace Mobility.Netlab.Tests;

/// <summary>The soak's /proc sample of a process: VmRSS and its three parts, descriptors, threads.</summary>
public sealed class SoakSampleTests
{
    [Fact]
    public void Rss_is_the_sum_of_its_anonymous_file_and_shmem_parts()
    {
        var sample = Host.Sample(Environment.ProcessId);

        Assert.True(sample.AnonKiB > 0);
        Assert.True(sample.FileKiB > 0);
        Assert.Equal(sample.RssKiB, sample.AnonKiB + sample.FileKiB + sample.ShmemKiB);
        Assert.True(sample.Fds > 0);
        Assert.True(sample.Threads > 0);
    }

    [Fact]
    public void Touched_heap_memory_shows_in_the_anonymous_part()
    {
        const int size = 64 << 20;
        var before = Host.Sample(Environment.ProcessId);
        var block = GC.AllocateUninitializedArray<byte>(size);
        for (var i = 0; i < size; i += 4096)
        {
            block[i] = 1;
        }

        var after = Host.Sample(Environment.ProcessId);
        GC.KeepAlive(block);

        Assert.True(after.AnonKiB - before.AnonKiB >= 48 << 10, $"anonymous {before.AnonKiB} -> {after.AnonKiB} KiB");
    }
}
