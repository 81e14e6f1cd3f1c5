using System.Text.Json;
using Mobility.EndToEnd.FunctionalTests.Infrastructure;

namespace Mobility.EndToEnd.FunctionalTests;

/// <summary>
/// The built <c>mob demo</c> as a real process: its embedded GNS, two hosts on 127.0.0.x, real
/// sockets and moves. Each run gets its own TMPDIR, so the test can check that the demo's folder
/// is gone afterwards. No timing is asserted: only that every stall was measured and the data is intact.
/// </summary>
public sealed class MobDemoTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Start (build output, JIT, GNS, two key pairs) plus 3 s of streaming, on a loaded 2-core machine.</summary>
    private static readonly TimeSpan RunLimit = TimeSpan.FromMinutes(3);

    /// <summary>The built mob: beside the tests, or in Mobility.Cli's output of the same build.</summary>
    private static readonly string Mob = Executables.Locate("mob", "Mobility.Cli");

    private readonly string _tmp = Directory.CreateTempSubdirectory("mob-demo-test-").FullName;

    [Fact]
    public async Task Demo_streams_through_three_moves_with_measured_stalls_and_equal_hashes()
    {
        await using var demo = Start("demo", "--json", "--duration", "3s");
        var exit = await demo.WaitForExitAsync(RunLimit);
        output.WriteLine(demo.StandardOutput);
        output.WriteLine(demo.StandardError);

        Assert.True(exit == 0, $"mob demo exited with {exit}\nstdout:\n{demo.StandardOutput}\nstderr:\n{demo.StandardError}");
        using var json = JsonDocument.Parse(demo.StandardOutput.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        Assert.True(root.GetProperty("ok").GetBoolean());

        var sent = root.GetProperty("bytes_sent").GetInt64();
        Assert.True(sent > 0, "nothing was sent");
        Assert.Equal(sent, root.GetProperty("bytes_received").GetInt64());
        var sha = root.GetProperty("sha256_sent").GetString()!;
        Assert.Matches("^[0-9a-f]{64}$", sha);
        Assert.Equal(sha, root.GetProperty("sha256_received").GetString());

        var moves = root.GetProperty("moves").EnumerateArray().ToArray();
        Assert.Equal(3, moves.Length);
        string[][] who = [["alice"], ["bob"], ["alice", "bob"]];
        for (var i = 0; i < moves.Length; i++)
        {
            var move = moves[i];
            Assert.Equal(i + 1, move.GetProperty("move").GetInt32());
            Assert.Equal(who[i], move.GetProperty("who").EnumerateArray().Select(e => e.GetString()!).ToArray());
            Assert.True(move.GetProperty("resumed").GetBoolean(), $"move {i + 1} did not resume");
            Assert.Equal(JsonValueKind.Number, move.GetProperty("stall_ms").ValueKind);
            Assert.True(move.GetProperty("stall_ms").GetDouble() > 0);
            Assert.Equal(JsonValueKind.Number, move.GetProperty("gap_ms").ValueKind);
            // Each move published a new signed record, and the connection resumed between the new addresses.
            Assert.Equal(JsonValueKind.Number, move.GetProperty("published_ms").ValueKind);
            var path = move.GetProperty("path");
            foreach (var host in move.GetProperty("hosts").EnumerateArray())
            {
                var to = host.GetProperty("to").GetString()!;
                Assert.NotEqual(host.GetProperty("from").GetString(), to);
                Assert.StartsWith("127.", to, StringComparison.Ordinal);
                var end = host.GetProperty("host").GetString() == "alice" ? "client" : "server";
                Assert.StartsWith(to + ":", path.GetProperty(end).GetString(), StringComparison.Ordinal);
            }
        }

        Assert.DoesNotContain(root.GetProperty("log").EnumerateArray(), l => l.GetString()!.StartsWith("error", StringComparison.Ordinal)
                                                                          || l.GetString()!.StartsWith("critical", StringComparison.Ordinal));
        AssertDemoFolderRemoved();
    }

    [Fact]
    public async Task Demo_with_a_size_streams_exactly_that_many_bytes_through_the_three_moves()
    {
        await using var demo = Start("demo", "--json", "--size", "16MiB");
        var exit = await demo.WaitForExitAsync(RunLimit);

        Assert.True(exit == 0, $"mob demo exited with {exit}\nstdout:\n{demo.StandardOutput}\nstderr:\n{demo.StandardError}");
        using var json = JsonDocument.Parse(demo.StandardOutput.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        Assert.Equal(16L << 20, root.GetProperty("bytes_sent").GetInt64());
        Assert.Equal(16L << 20, root.GetProperty("bytes_received").GetInt64());
        Assert.Equal(root.GetProperty("sha256_sent").GetString(), root.GetProperty("sha256_received").GetString());
        Assert.All(root.GetProperty("moves").EnumerateArray(), m => Assert.True(m.GetProperty("resumed").GetBoolean()));
        Assert.Equal(3, root.GetProperty("moves").GetArrayLength());
        AssertDemoFolderRemoved();
    }

    [Theory]
    [InlineData("--duration", "soon", "--duration 'soon' is not a duration")]
    [InlineData("--duration", "0s", "--duration '0s' is out of range")]
    [InlineData("--size", "12", "--size '12' is out of range")]
    [InlineData("--seed", "not-hex", "--seed 'not-hex' is not 1 to 16 hexadecimal digits")]
    public async Task Demo_refuses_bad_arguments_with_a_usage_error_before_starting_anything(string option, string value, string message)
    {
        await using var demo = Start("demo", "--json", option, value);
        var exit = await demo.WaitForExitAsync(RunLimit);

        Assert.Equal(64, exit);
        // With --json the error is one JSON object on stderr (mob --help).
        var error = JsonDocument.Parse(demo.StandardError.Trim()).RootElement;
        Assert.Contains(message, error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(64, error.GetProperty("exit_code").GetInt32());
        Assert.Equal("", demo.StandardOutput.Trim());
        AssertDemoFolderRemoved(createdAtAll: false);
    }

    [Fact]
    public async Task Demo_refuses_duration_and_size_together()
    {
        await using var demo = Start("demo", "--duration", "3s", "--size", "64MiB");
        var exit = await demo.WaitForExitAsync(RunLimit);

        Assert.Equal(64, exit);
        Assert.Contains("--duration and --size exclude each other", demo.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_stopped_by_SIGTERM_while_streaming_exits_130_and_removes_its_folder()
    {
        await using var demo = Start("demo", "--plain", "--duration", "120s");
        await demo.WaitForLineAsync(l => l.StartsWith("streaming ", StringComparison.Ordinal), RunLimit);
        // SIGTERM rather than SIGINT: a test runner started in the background may pass SIGINT on as ignored.
        demo.Signal(15);
        var exit = await demo.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 130, $"exit {exit}\nstdout:\n{demo.StandardOutput}\nstderr:\n{demo.StandardError}");
        Assert.Contains("interrupted", demo.StandardError, StringComparison.Ordinal);
        AssertDemoFolderRemoved();
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_tmp, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover here is reported by the assertion, not by the cleanup.
        }
    }

    private TestProcess Start(params string[] arguments)
        => TestProcess.Start(Mob, arguments, new Dictionary<string, string> { ["TMPDIR"] = _tmp });

    private void AssertDemoFolderRemoved(bool createdAtAll = true)
    {
        var left = Directory.EnumerateDirectories(_tmp, "mob-demo-*").ToArray();
        Assert.True(left.Length == 0, $"{(createdAtAll ? "the demo left" : "a refused demo created")} {string.Join(", ", left)}");
    }
}
