using Mobility.Netlab.Soak;
using Xunit.Abstractions;

namespace Mobility.Soak.FunctionalTests;

/// <summary>
/// A small instance of the fault soak with the real executables: gns on SQLite, two mobilityd on a
/// 127.x.y.0/24, a checked stream each way through SOCKS5 and exposed ports, 10 moves (one end, the
/// other, both) and one SIGKILL of gns with a restart. No timing is asserted; every byte is.
/// </summary>
public sealed class FaultSoakTests(ITestOutputHelper output)
{
    /// <summary>About 15 s of soak plus start (JIT, three processes) on a loaded 2-core machine.</summary>
    private static readonly TimeSpan RunLimit = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Ten_moves_and_a_gns_sigkill_lose_and_duplicate_no_byte_in_either_direction()
    {
        var log = new StringWriter();
        var options = new SoakOptions
        {
            Store = "sqlite",
            Moves = 10,
            Bytes = 24L << 20,
            MoveInterval = TimeSpan.FromMilliseconds(800),
            KillGns = true,
            GnsDown = TimeSpan.FromSeconds(1),
            Log = log,
        };

        SoakResult result;
        try
        {
            result = await new SoakRunner(options).RunAsync(CancellationToken.None).WaitAsync(RunLimit);
        }
        finally
        {
            output.WriteLine(log.ToString());
        }

        Assert.Equal(2, result.Directions.Count);
        foreach (var d in result.Directions)
        {
            Assert.Null(d.Error);
            Assert.Equal(24L << 20, d.Sent);
            Assert.Equal(d.Sent, d.Received);
            Assert.Equal(d.Sent, d.InOrder);
            Assert.Equal(0, d.Lost);
            Assert.Equal(0, d.Duplicated);
            Assert.Equal(0, d.Corrupt);
        }

        Assert.Equal(10, result.Moves.Count);
        Assert.All(result.Moves, m => Assert.True(m.Resumed, $"move {m.Move} ({m.Who}) did not resume"));
        Assert.Equal(["a", "b", "both"], result.Moves.Take(3).Select(m => m.Who));
        Assert.Equal("gns SIGKILL", result.Moves[5].Fault);
        Assert.NotNull(result.GnsDowntimeMs);
        Assert.True(result.GnsDowntimeMs >= 1000, $"gns was down {result.GnsDowntimeMs} ms, less than the 1 s it was kept down");
        Assert.True(result.Ok);
    }
}
