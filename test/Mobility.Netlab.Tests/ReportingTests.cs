using System.Xml.Linq;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Reporting;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Tests;

/// <summary>Plots, idle-stall and throughput arithmetic, executable lookup and ready-line parsing (no sockets).</summary>
public sealed class ReportingTests
{
    private static readonly long Ms = Stopwatch.Frequency / 1000;

    [Fact]
    public async Task A_move_gate_opens_for_all_once_the_last_party_arrives()
    {
        var gate = new Mobility.Netlab.Topology.MoveGate(3);
        var first = gate.ArriveAsync();
        var second = gate.ArriveAsync();
        await Task.Delay(20);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        var third = gate.ArriveAsync();

        await Task.WhenAll(first, second, third).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("0 0x0 0x556e1b414320 0x1000 0x1000 0x0 0x21001 0x7ffc97afdb78 0x7fc431e2d2ad", true)] // ip -batch - waiting for its input
    [InlineData("0 0x3 0x7fcc365c4000 0x20000 0x7fcc36656b60 0xffffffff 0x0 0x7ffced1d7cf8 0x7fcc3673f2ad", false)] // a read of fd 3
    [InlineData("61 0xffffffff 0x7ffd 0x0 0x0 0x0 0x0 0x7ffd 0x7f", false)] // wait4
    [InlineData("running", false)]
    [InlineData("-1 0x7ffe 0x7f", false)] // blocked, not in a syscall
    [InlineData("", false)]
    public void A_prepared_ip_batch_is_ready_when_it_blocks_reading_its_standard_input(string syscall, bool reading)
        => Assert.Equal(reading && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.Arm64,
            Mobility.Netlab.Topology.PreparedBatch.IsReadingStandardInput(syscall));

    [Theory]
    [InlineData("Connection 6c38: lost its path to 127.0.0.1:42563: local address 127.0.0.1 gone", true)]
    [InlineData("Connection 6c38: resumed via 127.0.0.1:41302 after 201.5 ms", true)]
    [InlineData("Connection e5b4: resume via 127.0.0.1:42645 refused: ResumeRefused", true)]
    [InlineData("Connection 6c38: standby path 4 up, [::1]:42563 -> [::1]:40531", true)]
    [InlineData("Connection 44fc: lost its path to 198.18.2.2:7395: receive failed", false)]
    [InlineData("Connection 44fc: resumed via 10.127.0.1:7391 after 35.0 ms", false)]
    [InlineData("Connection 44fc: resumed via 198.127.0.1:7391 after 35.0 ms", false)]
    [InlineData("Host addresses are now [127.0.0.1 192.168.1.2]", false)]
    public void The_daemons_start_up_rehearsal_over_loopback_is_told_from_the_labs_connections(string line, bool rehearsal)
        => Assert.Equal(rehearsal, DaemonProcess.IsLoopbackLine(line));

    [Fact]
    public void Svg_chart_is_well_formed_xml_with_one_polyline_per_series_and_the_marker()
    {
        var chart = new SvgChart { Title = "a < b & c", XLabel = "s", YLabel = "KiB/s" };
        chart.Series.Add(new ChartSeries("mobility", [(-1, 0), (0, 200), (1, 150)]));
        chart.Series.Add(new ChartSeries("tcp", [(-1, 200), (0, 0), (1, 0)]));
        chart.Markers.Add(new ChartMarker(0, "move"));

        var svg = XDocument.Parse(chart.Render());

        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(2, svg.Descendants(ns + "polyline").Count());
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "move");
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "a < b & c");
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(180, 200)]
    [InlineData(201, 250)]
    [InlineData(4100, 5000)]
    public void Chart_axis_rounds_up_to_a_nice_value(double value, double nice) => Assert.Equal(nice, SvgChart.NiceCeiling(value), 9);

    [Fact]
    public void Throughput_bins_count_received_bytes_per_second()
    {
        // One 1 KiB chunk every 5 ms for 100 ms: 200 KiB/s in every 50 ms bin.
        var arrivals = Enumerable.Range(0, 20).Select(i => new Arrival(i, i * 5 * Ms)).ToList();

        var bins = StallAnalysis.ThroughputKiBps(arrivals, 0, 100 * Ms, TimeSpan.FromMilliseconds(50), 1024);

        Assert.Equal([200.0, 200.0], bins.Select(b => Math.Round(b, 6)));
    }

    [Fact]
    public void Idle_stall_is_the_extra_one_way_delay_after_the_pause()
    {
        // Before the move: 10 ms one-way. After the pause the first chunk takes 70 ms, the next 12 ms.
        var arrivals = new List<Arrival>
        {
            new(0, 10 * Ms, 0), new(1, 15 * Ms, 5 * Ms), new(2, 20 * Ms, 10 * Ms),
            new(3, 1070 * Ms, 1000 * Ms), new(4, 1017 * Ms, 1005 * Ms),
        };

        var extra = StallAnalysis.ExtraDelayMs(arrivals, moveAt: 500 * Ms, sendingResumedAt: 1000 * Ms);

        Assert.Equal(60, extra!.Value, 6);
    }

    [Fact]
    public void Executables_are_looked_for_beside_and_in_both_build_layouts()
    {
        var here = new DirectoryInfo("/a/artifacts/bin/Mobility.Netlab.Tests/release");

        var candidates = MobilityExecutables.Candidates(here, "Mobility.Daemon.Host", "mobilityd.dll").Select(Path.GetFullPath).ToList();

        Assert.Equal("/a/artifacts/bin/Mobility.Netlab.Tests/release/mobilityd.dll", candidates[0]);
        Assert.Equal("/a/artifacts/bin/Mobility.Daemon.Host/release/mobilityd.dll", candidates[1]);
        var classic = MobilityExecutables.Candidates(new DirectoryInfo("/r/test/Mobility.Netlab.Tests/bin/Release/net10.0"), "Mobility.Daemon.Host", "mobilityd.dll").Select(Path.GetFullPath);
        Assert.Contains("/r/src/Mobility.Daemon.Host/bin/Release/net10.0/mobilityd.dll", classic);
    }

    [Fact]
    public void Ready_line_fields_are_read_by_name()
    {
        const string line = "mobilityd ready guid=00112233445566778899aabbccddeeff00112233 control=0.0.0.0:7390 http=- socket=/t/api.sock grpc=- grpc-socket=- transport=0.0.0.0:7391 socks=127.0.0.1:1080";

        Assert.Equal("00112233445566778899aabbccddeeff00112233", DaemonProcess.Field(line, "guid"));
        Assert.Equal("127.0.0.1:1080", DaemonProcess.Field(line, "socks"));
        Assert.Equal("-", DaemonProcess.Field(line, "grpc"));
        Assert.Null(DaemonProcess.Field(line, "gns"));
    }

    [Fact]
    public void Every_scenario_has_a_unique_name_and_flapping_moves_34_times()
    {
        Assert.Equal(Scenario.All.Count, Scenario.All.Select(s => s.Name).Distinct().Count());
        Assert.Equal(34, (int)(Scenario.FlapDuration / Scenario.FlapInterval) + 1);
    }
}
