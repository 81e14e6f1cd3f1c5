using Mobility.Fuzz;

namespace Mobility.Protocol.Tests.Fuzz;

/// <summary>
/// Replays every input kept in the repository through the fuzz harness (fuzz/Mobility.Fuzz), the one
/// afl-fuzz runs: the seed corpora (fuzz/corpus/TARGET) and every input that once crashed a parser
/// (fuzz/regressions/TARGET), so that a crash found by fuzzing stays fixed. Also checks that the
/// harness itself fails on what it must fail on, and runs every seed truncated and corrupted.
/// </summary>
public class FuzzRegressionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static TheoryData<string, string> KeptInputs()
    {
        var data = new TheoryData<string, string>();
        foreach (var folder in new[] { "corpus", "regressions" })
        {
            var root = Path.Combine(RepositoryRoot, "fuzz", folder);
            if (!Directory.Exists(root))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                if (Path.GetFileName(file) == "README.md")
                {
                    continue;
                }

                data.Add(Path.GetFileName(Path.GetDirectoryName(file))!, Path.GetRelativePath(RepositoryRoot, file));
            }
        }

        return data;
    }

    public static TheoryData<string> TargetNames() => new(Targets.All.Select(t => t.Name));

    [Theory]
    [MemberData(nameof(KeptInputs))]
    public async Task Kept_input_is_refused_or_accepted_and_never_crashes_the_harness(string target, string path)
    {
        var fuzzTarget = Targets.Find(target);
        Assert.NotNull(fuzzTarget);
        var bytes = await File.ReadAllBytesAsync(Path.Combine(RepositoryRoot, path)).WaitAsync(Timeout);

        var outcome = await Task.Run(() => Harness.Run(fuzzTarget, bytes)).WaitAsync(Timeout);

        if (Path.GetFileName(path).StartsWith("valid-", StringComparison.Ordinal))
        {
            Assert.Equal(FuzzOutcome.Accepted, outcome);
        }
    }

    [Theory]
    [MemberData(nameof(TargetNames))]
    public void Committed_corpus_is_what_the_encoders_write_today(string target)
    {
        var fuzzTarget = Targets.Find(target)!;
        var folder = Path.Combine(RepositoryRoot, "fuzz", "corpus", target);
        var seeds = fuzzTarget.Seeds().ToList();

        Assert.NotEmpty(seeds);
        Assert.Contains(seeds, s => s.MustBeAccepted);
        foreach (var seed in seeds)
        {
            var file = Path.Combine(folder, seed.Name);
            Assert.True(File.Exists(file), $"{file} is missing: run `Mobility.Fuzz seeds fuzz/corpus`.");
            Assert.True(File.ReadAllBytes(file).AsSpan().SequenceEqual(seed.Bytes), $"{file} differs from its encoder: run `Mobility.Fuzz seeds fuzz/corpus`.");
        }
    }

    [Fact]
    public void Every_corpus_and_regression_folder_names_a_target()
    {
        foreach (var folder in new[] { "corpus", "regressions" })
        {
            var root = Path.Combine(RepositoryRoot, "fuzz", folder);
            foreach (var directory in Directory.Exists(root) ? Directory.GetDirectories(root) : [])
            {
                Assert.NotNull(Targets.Find(Path.GetFileName(directory)));
            }
        }
    }

    [Theory]
    [MemberData(nameof(TargetNames))]
    public async Task Every_seed_truncated_and_corrupted_is_refused_or_accepted_and_never_crashes(string target)
    {
        var fuzzTarget = Targets.Find(target)!;
        var runs = await Task.Run(() =>
        {
            var count = 0;
            foreach (var seed in fuzzTarget.Seeds())
            {
                for (var length = 0; length < seed.Bytes.Length; length++)
                {
                    Harness.Run(fuzzTarget, seed.Bytes.AsSpan(0, length));
                    count++;
                }

                for (var i = 0; i < seed.Bytes.Length; i++)
                {
                    foreach (var value in (byte[])[0x00, 0xFF, (byte)(seed.Bytes[i] ^ 0x01)])
                    {
                        var corrupted = (byte[])seed.Bytes.Clone();
                        corrupted[i] = value;
                        Harness.Run(fuzzTarget, corrupted);
                        count++;
                    }
                }
            }

            return count;
        }).WaitAsync(Timeout);

        Assert.True(runs > 0);
    }

    [Fact]
    public void Harness_fails_an_undocumented_exception_and_a_subclass_of_a_documented_one()
    {
        var target = new FuzzTarget("test", "a parser that throws", [typeof(IOException)],
            input => input[0] switch
            {
                0 => throw new IOException("documented"),
                1 => throw new EndOfStreamException("a subclass is not the documented type"),
                _ => throw new ArgumentOutOfRangeException(nameof(input)),
            },
            () => []);

        Assert.Equal(FuzzOutcome.Rejected, Harness.Run(target, [0]));
        Assert.Contains("EndOfStreamException", Assert.Throws<FuzzFailureException>(() => Harness.Run(target, [1])).Message, StringComparison.Ordinal);
        Assert.Contains("ArgumentOutOfRangeException", Assert.Throws<FuzzFailureException>(() => Harness.Run(target, [2])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Harness_fails_an_input_that_allocates_more_than_its_limit()
    {
        var target = new FuzzTarget("test", "a parser that trusts a length", [],
            input => new byte[(int)Harness.MaxAllocatedBytes + input.Length].Length > 0 ? FuzzOutcome.Accepted : FuzzOutcome.Rejected,
            () => []);

        Assert.Contains("allocated", Assert.Throws<FuzzFailureException>(() => Harness.Run(target, [1])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_check_fails_a_need_more_answer_that_consumed_bytes()
    {
        var failure = Assert.Throws<FuzzFailureException>(() => StreamCheck.Drain([1, 2, 3], [], 4, (ref SequenceReader<byte> reader, int index) =>
        {
            reader.Advance(1);
            return null;
        }));

        Assert.Contains("need more bytes", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_check_fails_a_parse_that_depends_on_segment_boundaries()
    {
        // Reads only what the current segment holds: right on one segment, wrong once split.
        var failure = Assert.Throws<FuzzFailureException>(() => StreamCheck.Drain([1, 2, 3, 4], [], 1, (ref SequenceReader<byte> reader, int index) =>
        {
            var length = reader.CurrentSpan.Length - reader.CurrentSpanIndex;
            reader.Advance(length);
            return $"read {length}";
        }));

        Assert.Contains("split", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_check_fails_a_message_that_consumed_nothing()
    {
        Assert.Throws<FuzzFailureException>(() => StreamCheck.Drain([1], [], 4, (ref SequenceReader<byte> reader, int index) => "nothing"));
    }

    /// <summary>The folder holding Mobility.sln (the tests run from test/*/bin/...).</summary>
    private static string RepositoryRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Mobility.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Mobility.sln above {AppContext.BaseDirectory}.");
    }
}
