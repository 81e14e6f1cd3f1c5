using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static Mobility.Gns.Dns.Tests.Records;

namespace Mobility.Gns.Dns.FunctionalTests;

/// <summary>A generic host with the DNS front end on 127.0.0.1 (a free port) over an in-memory store holding a few records.</summary>
public sealed class DnsServerFixture : IAsyncLifetime
{
    public const string Zone = "gns.test";
    private IHost? _host;

    public HostKey Alice { get; } = HostKey.Generate();

    public HostKey Big { get; } = HostKey.Generate();

    public HostKey Fleeting { get; } = HostKey.Generate();

    /// <summary>The longest name, so that 16 AAAA answers exceed 512 octets.</summary>
    public static string BigName { get; } = new('b', HostName.MaxLength);

    public IPEndPoint UdpEndPoint { get; private set; } = null!;

    public IPEndPoint TcpEndPoint { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var store = new InMemoryGnsStore();
        await store.PutAsync(Make(Alice, 3, "alice", 30, At("192.0.2.1"), At("2001:db8::a"), At("203.0.113.5", 7, LocatorKind.Observed)), false).WithTimeout();
        await store.PutAsync(Make(Big, 1, BigName, 60, Enumerable.Range(1, GnsRecord.MaxLocators).Select(i => At($"2001:db8::{i:x}")).ToArray()), false).WithTimeout();
        await store.PutAsync(Make(Fleeting, 1, "fleeting", 0, At("192.0.2.99")), false).WithTimeout();

        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IGnsStore>(store);
        builder.Services.AddGnsDns(new IPEndPoint(IPAddress.Loopback, 0), Zone);
        builder.Services.Configure<GnsDnsOptions>(o => o.TcpIdleTimeout = TimeSpan.FromSeconds(2));
        _host = builder.Build();
        await _host.StartAsync().WithTimeout();
        var server = _host.Services.GetRequiredService<GnsDnsServer>();
        UdpEndPoint = server.UdpEndPoint!;
        TcpEndPoint = server.TcpEndPoint!;
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync().WithTimeout();
            _host.Dispose();
        }

        Alice.Dispose();
        Big.Dispose();
        Fleeting.Dispose();
    }
}

/// <summary>Runs dig and reads its answer.</summary>
internal sealed record DigResult(string Output)
{
    public string Status => Match(@"status: (\w+)");

    public string[] Flags => Match(@";; flags: ([a-z ]+);").Split(' ', StringSplitOptions.RemoveEmptyEntries);

    public int AnswerCount => int.Parse(Match(@"ANSWER: (\d+)"), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Record lines of one section ("ANSWER", "AUTHORITY", "OPT PSEUDOSECTION"), split on whitespace.</summary>
    public List<string[]> Section(string name)
    {
        var lines = Output.Split('\n');
        var start = Array.FindIndex(lines, l => l.StartsWith($";; {name} SECTION:", StringComparison.Ordinal) || l.StartsWith($";; {name}:", StringComparison.Ordinal));
        if (start < 0)
        {
            return [];
        }

        return lines.Skip(start + 1).TakeWhile(l => l.Trim().Length > 0)
            .Select(l => l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)).ToList();
    }

    private string Match(string pattern)
    {
        var match = System.Text.RegularExpressions.Regex.Match(Output, pattern);
        Assert.True(match.Success, $"'{pattern}' not in dig output:\n{Output}");
        return match.Groups[1].Value.Trim();
    }
}

internal static class Dig
{
    public static async Task<DigResult> RunAsync(IPEndPoint server, params string[] arguments)
    {
        string[] common = [$"@{server.Address}", "-p", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "+norec", "+time=5", "+tries=1"];
        var (exitCode, output, error) = await Tool.RunAsync("dig", [.. common, .. arguments]);
        Assert.True(exitCode == 0, $"dig exited with {exitCode}: {error}{output}");
        return new DigResult(output);
    }
}
