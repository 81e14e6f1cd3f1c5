using System.Net;
using Mobility.Daemon.GnsServers;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>--gns with several endpoints and names, and the Happy Eyeballs choice among them.</summary>
public sealed class GnsServerListTests
{
    [Fact]
    public void Addresses_and_names_parse_with_their_ports()
    {
        Assert.True(GnsServerList.TryParse("192.0.2.1:7353, [2001:db8::1]:7000,gns.example:7400,gns2.example,[::ffff:192.0.2.9]:1", out var list, out var error), error);

        Assert.Equal(
            [new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7353), new IPEndPoint(IPAddress.Parse("2001:db8::1"), 7000), new IPEndPoint(IPAddress.Parse("192.0.2.9"), 1)],
            list.EndPoints);
        Assert.Equal([("gns.example", 7400), ("gns2.example", 7353)], list.Names);
        Assert.False(list.IsSingleAddress);
    }

    [Fact]
    public void One_address_needs_no_choice()
    {
        Assert.True(GnsServerList.TryParse("127.0.0.1:7353", out var list, out _));
        Assert.True(list.IsSingleAddress);
    }

    [Theory]
    [InlineData("")]
    [InlineData(",")]
    [InlineData("127.0.0.1")]
    [InlineData("::1:80")]
    [InlineData("gns.example:0")]
    [InlineData("gns.example:70000")]
    [InlineData("gns_example:7353")]
    [InlineData("-gns.example")]
    [InlineData("300.1.1.1:80")]
    [InlineData("[::1]")]
    public void Anything_else_is_refused_with_the_bad_entry(string text)
    {
        Assert.False(GnsServerList.TryParse(text, out var list, out var error));
        Assert.Null(list);
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void Too_many_entries_are_refused()
        => Assert.False(GnsServerList.TryParse(string.Join(',', Enumerable.Range(1, GnsServerList.MaxEntries + 1).Select(i => $"192.0.2.{i}:7353")), out _, out _));

    [Fact]
    public void The_validator_names_the_option_of_a_bad_gns_list()
    {
        var result = new MobilitydOptionsValidator().Validate(null, new MobilitydOptions { Gns = "192.0.2.1:7353,bad name" });

        var failure = Assert.Single(result.Failures!);
        Assert.Contains("Gns (--gns)", failure, StringComparison.Ordinal);
        Assert.Contains("'bad name'", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolved_addresses_alternate_families_IPv6_first()
    {
        var addresses = new[] { "192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.3", "2001:db8::2" }.Select(IPAddress.Parse);

        Assert.Equal(["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "192.0.2.3"], GnsServerList.Interleave(addresses).Select(a => a.ToString()));
    }

    [Fact]
    public void Each_address_of_the_gns_gets_the_grpc_url_on_its_own_address()
    {
        IPEndPoint[] candidates = [new(IPAddress.Parse("10.231.100.2"), 7353), new(IPAddress.Parse("fd00:231:100::2"), 7353)];
        var grpc = new Uri("http://10.231.100.2:7381/");

        Assert.Equal(grpc, GnsServerList.GrpcFor(grpc, candidates[0], candidates));
        Assert.Equal(new Uri("http://[fd00:231:100::2]:7381/"), GnsServerList.GrpcFor(grpc, candidates[1], candidates));
        Assert.Equal(new Uri("http://10.231.100.2:7381/"), GnsServerList.GrpcFor(new Uri("http://[fd00:231:100::2]:7381/"), candidates[0], candidates));
    }

    [Theory]
    [InlineData("http://192.0.2.50:7381/")]
    [InlineData("http://gns.example:7381/")]
    public void A_grpc_url_on_another_host_or_a_name_is_kept_as_given(string url)
    {
        IPEndPoint[] candidates = [new(IPAddress.Parse("10.231.100.2"), 7353), new(IPAddress.Parse("fd00:231:100::2"), 7353)];

        Assert.Equal(new Uri(url), GnsServerList.GrpcFor(new Uri(url), candidates[1], candidates));
        Assert.Null(GnsServerList.GrpcFor(null, candidates[1], candidates));
    }

    [Fact]
    public async Task Localhost_resolves_to_loopback_candidates_with_the_default_port()
    {
        Assert.True(GnsServerList.TryParse("localhost", out var list, out _));

        var candidates = await list.ResolveAsync(null, CancellationToken.None);

        Assert.NotEmpty(candidates);
        Assert.All(candidates, c => Assert.True(IPAddress.IsLoopback(c.Address) && c.Port == 7353, c.ToString()));
    }

    private static readonly IPEndPoint First = new(IPAddress.Parse("2001:db8::1"), 7353);
    private static readonly IPEndPoint Second = new(IPAddress.Parse("192.0.2.1"), 7353);

    [Fact]
    public async Task A_candidate_that_fails_hands_over_to_the_next_at_once()
    {
        var tried = new List<IPEndPoint>();
        var selector = new GnsServerSelector
        {
            Stagger = TimeSpan.FromHours(1),
            Probe = (endPoint, _) =>
            {
                lock (tried)
                {
                    tried.Add(endPoint);
                }

                return Task.FromResult(endPoint.Equals(Second));
            },
        };

        Assert.Equal(Second, await selector.SelectAsync([First, Second], CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal([First, Second], tried);
    }

    [Fact]
    public async Task A_candidate_that_does_not_answer_is_overtaken_after_the_stagger()
    {
        var firstCancelled = new TaskCompletionSource();
        var selector = new GnsServerSelector
        {
            Stagger = TimeSpan.FromMilliseconds(10),
            Probe = async (endPoint, ct) =>
            {
                if (endPoint.Equals(First))
                {
                    // Silent: waits until the selection abandons it.
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        firstCancelled.TrySetResult();
                        throw;
                    }
                }

                return true;
            },
        };

        Assert.Equal(Second, await selector.SelectAsync([First, Second], CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        await firstCancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task No_answer_within_the_budget_chooses_none()
    {
        var selector = new GnsServerSelector
        {
            Stagger = TimeSpan.FromMilliseconds(1),
            Budget = TimeSpan.FromMilliseconds(50),
            Probe = async (_, ct) =>
            {
                await Task.Delay(Timeout.Infinite, ct);
                return true;
            },
        };

        Assert.Null(await selector.SelectAsync([First, Second], CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
