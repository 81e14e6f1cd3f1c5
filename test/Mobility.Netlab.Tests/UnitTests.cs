using Mobility.Netlab.Emulation;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Topology;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Tests;

public sealed class UnitTests
{
    [Fact]
    public void Ifreq_has_the_name_then_the_flags_at_offset_16_in_40_bytes()
    {
        var ifreq = new byte[Libc.IfReqSize];
        Libc.WriteIfReq(ifreq, "tedge", Libc.IffTun | Libc.IffNoPi);

        Assert.Equal(40, ifreq.Length);
        Assert.Equal("tedge"u8.ToArray(), ifreq[..5]);
        Assert.All(ifreq[5..16], b => Assert.Equal(0, b));
        Assert.Equal(0x1001, BitConverter.ToInt16(ifreq, 16));
        Assert.All(ifreq[18..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Ifreq_rejects_names_longer_than_15_bytes() =>
        Assert.Throws<ArgumentException>(() => Libc.WriteIfReq(new byte[Libc.IfReqSize], "a-very-long-name", Libc.IffTun));

    [Theory]
    [InlineData("25ms", 25)]
    [InlineData("1.5s", 1500)]
    [InlineData("250us", 0.25)]
    public void Durations_parse(string text, double ms) => Assert.Equal(ms, Durations.Parse(text).TotalMilliseconds, 6);

    [Theory]
    [InlineData("1%", 0.01)]
    [InlineData("0.2", 0.2)]
    public void Loss_parses_percent_and_fraction(string text, double value) => Assert.Equal(value, Durations.ParseLoss(text), 9);

    [Fact]
    public void Emulator_options_round_trip_through_the_command_line()
    {
        var options = new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(25), Jitter = TimeSpan.FromMilliseconds(2), Loss = 0.01, Seed = 3 };
        Assert.Equal(["--delay", "25ms", "--jitter", "2ms", "--loss", "1%", "--queue-limit", "4096", "--seed", "3"], options.ToArguments());
    }

    [Theory]
    [InlineData("mlab-4242-3-client", 4242)]
    [InlineData("mlab-x-1-client", null)]
    [InlineData("other-4242-1-client", null)]
    public void Namespace_names_carry_their_owner(string name, int? owner) => Assert.Equal(owner, LabNames.OwnerOf(name));

    [Fact]
    public void Stall_is_the_longest_gap_ending_after_the_move()
    {
        var ms = Stopwatch.Frequency / 1000;
        // Chunks every 5 ms, move at 100 ms, nothing between 105 and 405 ms.
        var arrivals = new List<Arrival>();
        long seq = 0;
        for (var t = 0L; t <= 105; t += 5)
        {
            arrivals.Add(new Arrival(seq++, t * ms));
        }

        for (var t = 405L; t <= 500; t += 5)
        {
            arrivals.Add(new Arrival(seq++, t * ms));
        }

        Assert.Equal(300, StallAnalysis.StallMs(arrivals, 100 * ms)!.Value, 3);
        Assert.Null(StallAnalysis.StallMs(arrivals, 600 * ms));
        // A window that ends before the gap (the next move's) leaves it out; one that ends after it keeps it.
        Assert.Equal(5, StallAnalysis.StallMs(arrivals, 50 * ms, until: 400 * ms)!.Value, 3);
        Assert.Equal(300, StallAnalysis.StallMs(arrivals, 50 * ms, until: 406 * ms)!.Value, 3);
        Assert.Equal(0, StallAnalysis.MissingChunks(arrivals, seq));
        Assert.Equal(3, StallAnalysis.MissingChunks(arrivals, seq + 3));
    }

    [Fact]
    public void Chunks_round_trip_and_corruption_is_detected()
    {
        var chunk = new byte[Chunks.Size];
        Chunks.Write(chunk, 77, 1234);
        Assert.Equal(77, Chunks.Read(chunk, out var ts));
        Assert.Equal(1234, ts);

        chunk[16] ^= 0xff;
        Assert.Equal(-1, Chunks.Read(chunk, out _));
    }

    [Fact]
    public void An_https_only_nat_lets_out_tcp_443_and_what_also_outbound_names_and_nothing_else()
    {
        var script = NatRules.Script(
            new NatSiteOptions { Role = "hotel", Kind = NatKind.HttpsOnly, AlsoOutbound = [PortForward.Udp(7353)] },
            System.Net.IPAddress.Parse("192.168.1.2"), "192.168.1.0/24");

        Assert.Contains("iifname \"lan*\" tcp dport 443 accept", script, StringComparison.Ordinal);
        Assert.Contains("iifname \"lan*\" udp dport 7353 accept", script, StringComparison.Ordinal);
        Assert.DoesNotContain("iifname \"lan*\" accept", script, StringComparison.Ordinal);
        Assert.Contains("policy drop", script, StringComparison.Ordinal);
    }
}
