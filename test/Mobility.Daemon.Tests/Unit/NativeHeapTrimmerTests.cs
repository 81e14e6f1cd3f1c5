using System.Runtime.InteropServices;
using Microsoft.Extensions.Time.Testing;
using NativeHeapTrimmer = Mobility.Daemon.Internal.NativeHeapTrimmer;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>
/// The daemon gives the C heap's free pages back to the kernel (issue 13, flat memory in the move soak):
/// a run of freed malloc blocks below a block still in use stays resident until it is trimmed. Residency
/// is read per page with mincore(2), so other tests' allocations in the same process do not blur it. The run
/// itself needs its blocks laid one after the other, which other tests allocating at the same time can break
/// (seen once in a full suite: "only 185 of 512 blocks are adjacent"): the class runs alone, and a run that
/// still comes out scattered is made again.
/// </summary>
[Collection(nameof(NativeHeapTrimmerTests))]
public sealed class NativeHeapTrimmerTests
{
    private const int BlockSize = 64 * 1024; // below glibc's mmap threshold (128 KiB): served from an arena
    private const int Blocks = 512; // 32 MiB

    [Fact]
    public void Trim_gives_the_pages_of_freed_blocks_below_a_live_one_back()
    {
        using var run = FreedRun.Make();
        Assert.True(run.ResidentFraction() > 0.9, $"freed but not trimmed: {run.ResidentFraction():P0} of the run's pages resident");

        Assert.True(NativeHeapTrimmer.TrimNow());

        Assert.True(run.ResidentFraction() < 0.25, $"trimmed: {run.ResidentFraction():P0} of the run's pages still resident");
    }

    [Fact]
    public async Task The_hosted_trimmer_trims_every_interval()
    {
        var time = new FakeTimeProvider();
        var options = Options.Create(new MobilitydOptions { NativeHeapTrimInterval = TimeSpan.FromMinutes(1) });
        using var trimmer = new NativeHeapTrimmer(options, time);
        using var run = FreedRun.Make();
        await trimmer.StartAsync(CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, trimmer.Passes);
        Assert.True(run.ResidentFraction() > 0.9, $"before the first interval: {run.ResidentFraction():P0} resident");

        time.Advance(TimeSpan.FromSeconds(1));
        await TestTimeout.Eventually(() => trimmer.Passes == 1, "the first trim");
        Assert.True(run.ResidentFraction() < 0.25, $"after the first interval: {run.ResidentFraction():P0} still resident");

        time.Advance(TimeSpan.FromMinutes(1));
        await TestTimeout.Eventually(() => trimmer.Passes == 2, "the second trim");
        await trimmer.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Zero_turns_trimming_off()
    {
        var time = new FakeTimeProvider();
        using var trimmer = new NativeHeapTrimmer(Options.Create(new MobilitydOptions { NativeHeapTrimInterval = TimeSpan.Zero }), time);
        await trimmer.StartAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromHours(1));
        await trimmer.ExecuteTask!;
        Assert.Equal(0, trimmer.Passes);
    }

    [Fact]
    public void The_daemon_runs_the_trimmer_and_refuses_a_negative_interval()
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection().AddMobilityDaemon();
        Assert.Contains(services, d => d.ServiceType == typeof(NativeHeapTrimmer));
        Assert.Equal(TimeSpan.FromMinutes(1), new MobilitydOptions().NativeHeapTrimInterval);

        var result = new MobilitydOptionsValidator().Validate(null, new MobilitydOptions
        {
            Gns = "127.0.0.1:7353",
            NativeHeapTrimInterval = TimeSpan.FromSeconds(-1),
        });
        Assert.Contains(result.Failures!, f => f.StartsWith("NativeHeapTrimInterval", StringComparison.Ordinal));
    }

    /// <summary>
    /// The longest run of adjacent 64 KiB blocks among 512 malloc'ed and written ones, all freed but the
    /// run's last (which keeps the freed run from being the arena's top, which free() itself returns).
    /// </summary>
    private sealed class FreedRun : IDisposable
    {
        private readonly nint _keeper;
        private readonly nint _start;
        private readonly nint _end;

        private FreedRun(nint keeper, nint start, nint end) => (_keeper, _start, _end) = (keeper, start, end);

        public static FreedRun Make()
        {
            for (var attempt = 1; ; attempt++)
            {
                if (TryMake(out var run) is { } scattered)
                {
                    Assert.True(attempt < 3, scattered);
                    continue;
                }

                return run!;
            }
        }

        /// <summary>A run, or why none: the longest stretch of adjacent blocks was too short (every block freed again).</summary>
        private static string? TryMake(out FreedRun? run)
        {
            run = null;
            var blocks = new nint[Blocks];
            var fill = new byte[BlockSize];
            Array.Fill(fill, (byte)0x5A);
            for (var i = 0; i < Blocks; i++)
            {
                blocks[i] = Marshal.AllocHGlobal(BlockSize); // malloc
                Marshal.Copy(fill, 0, blocks[i], BlockSize);
            }

            // glibc places each chunk after the last (64 KiB plus a 16-byte header) while the arena's top serves them.
            var sorted = blocks.Order().ToArray();
            int bestFrom = 0, bestLength = 1;
            for (int from = 0, i = 1; i <= sorted.Length; i++)
            {
                if (i == sorted.Length || sorted[i] - sorted[i - 1] > BlockSize + 64)
                {
                    (bestFrom, bestLength) = i - from > bestLength ? (from, i - from) : (bestFrom, bestLength);
                    from = i;
                }
            }

            if (bestLength < Blocks / 2)
            {
                foreach (var block in blocks)
                {
                    Marshal.FreeHGlobal(block);
                }

                return $"only {bestLength} of {Blocks} blocks are adjacent";
            }

            var keeper = sorted[bestFrom + bestLength - 1];
            foreach (var block in blocks.Where(b => b != keeper))
            {
                Marshal.FreeHGlobal(block);
            }

            run = new FreedRun(keeper, sorted[bestFrom], keeper);
            return null;
        }

        /// <summary>Share of the whole pages between the run's first block and the live last one that are resident.</summary>
        public double ResidentFraction()
        {
            var page = Environment.SystemPageSize;
            var start = (_start + BlockSize + page - 1) / page * page; // past the first block's chunk header and the free-list links
            var end = _end / page * page;
            var pages = new byte[(end - start) / page];
            Assert.Equal(0, mincore(start, (nuint)(end - start), pages));
            return pages.Count(p => (p & 1) != 0) / (double)pages.Length;
        }

        public void Dispose() => Marshal.FreeHGlobal(_keeper);
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code.
    [DllImport("libc", SetLastError = true)]
    private static extern int mincore(nint address, nuint length, byte[] vector);
#pragma warning restore SYSLIB1054
}

/// <summary>The native heap tests run with no other test at the same time (their malloc blocks must lie side by side).</summary>
[CollectionDefinition(nameof(NativeHeapTrimmerTests), DisableParallelization = true)]
public sealed class NativeHeapTrimmerCollection;
