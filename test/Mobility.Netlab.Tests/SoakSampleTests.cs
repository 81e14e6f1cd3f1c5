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

    [Fact]
    public async Task A_child_gets_the_extra_environment_and_this_process_keeps_its_own()
    {
        var name = "SOAK_TEST_" + Guid.NewGuid().ToString("N");
        await using var child = ChildProcess.Start("sh", ["-c", $"echo \"ready ${name}\"; exec sleep 30"], "ready ",
            environment: new Dictionary<string, string> { [name] = "MALLOC_ARENA_MAX=2" });

        Assert.Equal("MALLOC_ARENA_MAX=2", await child.WaitReadyAsync(TimeSpan.FromSeconds(30)));
        Assert.Null(Environment.GetEnvironmentVariable(name));
    }
}
