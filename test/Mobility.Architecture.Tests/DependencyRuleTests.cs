namespace Mobility.Architecture.Tests;

/// <summary>The project files of the repository keep the dependency rules of docs/architecture.md.</summary>
public sealed class DependencyRuleTests
{
    private static readonly string Root = ProjectGraph.FindRoot();
    private static readonly ProjectGraph Graph = ProjectGraph.Load(Root);

    [Fact]
    public void The_project_files_are_found()
    {
        Assert.Contains("Mobility.Protocol", Graph.Projects.Keys);
        Assert.Contains("Mobility.Architecture.Tests", Graph.Projects.Keys);
        Assert.True(Graph.Projects.Count >= 20, $"only {Graph.Projects.Count} projects found under {Root}");
    }

    [Fact]
    public void Every_project_reference_keeps_the_dependency_rules()
    {
        var violations = DependencyRules.Check(Graph);
        Assert.True(violations.Count == 0, "Dependency rules broken:\n" + string.Join('\n', violations));
    }

    [Fact]
    public void Every_project_under_src_bench_and_test_is_in_the_solution()
    {
        var listed = ProjectGraph.SolutionProjects(Path.Combine(Root, "Mobility.sln"));
        var missing = Graph.Projects.Keys.Where(name => !listed.Contains(name)).Order(StringComparer.Ordinal).ToArray();
        Assert.True(missing.Length == 0, "Not in Mobility.sln: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_rule_names_a_project_and_the_rules_have_no_cycle()
    {
        var unknown = DependencyRules.Allowed.Keys.Concat(DependencyRules.Allowed.Values.SelectMany(v => v))
            .Distinct(StringComparer.Ordinal)
            .Where(name => !Graph.Projects.TryGetValue(name, out var node) || node.Folder != "src")
            .ToArray();
        Assert.True(unknown.Length == 0, "Rules name projects that are not in src/: " + string.Join(", ", unknown));
        var order = DependencyRules.LayerOrder();
        Assert.NotNull(order);
        Assert.Equal("Mobility.Protocol", order[0]);
    }

    [Fact]
    public void The_diagram_in_architecture_md_draws_exactly_the_references_of_src()
    {
        var drawn = ProjectGraph.MermaidEdges(Path.Combine(Root, "docs", "architecture.md"));
        var actual = Graph.Projects.Values
            .Where(p => p.Folder == "src")
            .SelectMany(p => p.CodeReferences.Select(target => (From: p.Name, To: target)))
            .ToHashSet();
        var undrawn = actual.Except(drawn).Select(e => $"{e.From} -> {e.To}").Order(StringComparer.Ordinal).ToArray();
        var extra = drawn.Except(actual).Select(e => $"{e.From} -> {e.To}").Order(StringComparer.Ordinal).ToArray();
        Assert.True(undrawn.Length == 0 && extra.Length == 0,
            $"docs/architecture.md's diagram is not the project graph.\nReferenced but not drawn: {string.Join(", ", undrawn)}\nDrawn but not referenced: {string.Join(", ", extra)}");
    }

    [Fact]
    public void A_reference_that_points_outward_is_reported()
    {
        var graph = new ProjectGraph(
        [
            new ProjectNode("Mobility.Protocol", "src", [new ProjectReference("Mobility.Net", false)]),
            new ProjectNode("Mobility.Net", "src", [new ProjectReference("Mobility.Protocol", false)]),
            new ProjectNode("Mobility.Gns", "src", []),
            new ProjectNode("Mobility.Daemon", "src", [new ProjectReference("Mobility.Gns", false), new ProjectReference("Mobility.Daemon.Host", false)]),
            new ProjectNode("Mobility.Daemon.Host", "src", [new ProjectReference("Mobility.Daemon", false)]),
            new ProjectNode("Mobility.Cli", "src", [new ProjectReference("Mobility.Daemon", false), new ProjectReference("Mobility.Daemon.Host", true)]),
            new ProjectNode("Mobility.Unruled", "src", []),
            new ProjectNode("Mobility.Some.Tests", "test", []),
            new ProjectNode("Mobility.Netlab", "src", [new ProjectReference("Mobility.Some.Tests", false)]),
        ]);

        var violations = DependencyRules.Check(graph);

        Assert.Contains(violations, v => v.StartsWith("Mobility.Protocol -> Mobility.Net: not allowed", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith("Mobility.Daemon -> Mobility.Gns: not allowed", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith("Mobility.Daemon -> Mobility.Daemon.Host: no src project compiles against a *.Host", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith("Mobility.Cli -> Mobility.Daemon: not allowed", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith("Mobility.Unruled: no dependency rule", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.StartsWith("Mobility.Netlab -> Mobility.Some.Tests: src must not reference test/", StringComparison.Ordinal));
        // A build-only reference to a host (an executable to start) is not a code dependency.
        Assert.DoesNotContain(violations, v => v.StartsWith("Mobility.Cli -> Mobility.Daemon.Host", StringComparison.Ordinal));
        Assert.Equal(6, violations.Count);
    }

    [Fact]
    public void Mermaid_node_ids_map_to_project_names()
    {
        var file = Path.Combine(Path.GetTempPath(), $"arch-{Guid.NewGuid():N}.md");
        File.WriteAllText(file, "text\n```mermaid\nflowchart BT\n  Daemon_Client[\"Mobility.Daemon.Client\"]\n  Daemon_Client --> Protocol\n  Cli-->Net\n```\nA --> B\n");
        try
        {
            var edges = ProjectGraph.MermaidEdges(file);
            Assert.Equal(2, edges.Count);
            Assert.Contains(("Mobility.Daemon.Client", "Mobility.Protocol"), edges);
            Assert.Contains(("Mobility.Cli", "Mobility.Net"), edges);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
