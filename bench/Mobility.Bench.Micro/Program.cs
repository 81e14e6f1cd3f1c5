using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// dotnet run -c Release --project bench/Mobility.Bench.Micro -- --filter '*'
//
// Every class is [ShortRunJob] (3 warm-up and 3 measured iterations, seconds per class). The mutator
// below runs those jobs in process: no generated project is built, so nothing is written under src/
// (several engineers build this tree at once), at the price of sharing the process with the runner.
var config = DefaultConfig.Instance.AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).AsMutator());
BenchmarkSwitcher.FromAssembly(typeof(Mobility.Bench.Micro.RecordBenchmarks).Assembly).Run(args, config);
