using Google.Protobuf;
using VideoMatch.Engine.Inference;
using VideoMatch.Engine.Onnx;
using DataType = VideoMatch.Engine.Onnx.Proto.TensorProto.Types.DataType;

namespace VideoMatch.Engine.Models;

/// <summary>
/// Builds, in memory, a weight-free dense pair matcher with EfficientLoFTR's input/output contract, so that a
/// machine without downloaded weights runs the same adapter and ONNX Runtime path as the real model.
/// </summary>
/// <remarks>
/// Pipeline, per pair: gray → Gaussian blur → 64-pixel patch descriptors (8×8 samples, 8 px apart, of 4×4 box means)
/// centred on the 1/8 coarse grid, zero-mean and unit-norm → similarity / temperature → dual softmax →
/// mutual nearest neighbour at the scale of a 3×3 neighbourhood, two border cells removed → sub-cell refinement of each image-1 point by
/// Lucas–Kanade on a window sampled with GridSample, coarse then fine blur → a match is kept only if its
/// refined windows correlate (normalised cross-correlation above 0.9, MinCorrelation). Outputs use the pair-slot layout:
/// slot n is image-0 cell n, and keypoints[b,0,n] ↔ keypoints[b,1,n] is its match.
/// </remarks>
public static class EmbeddedMatcherModel
{
    /// <summary>Name reported by model info.</summary>
    public const string Name = "videomatch-embedded-patch-matcher";

    /// <summary>Coarse cell size in model-input pixels, as in EfficientLoFTR.</summary>
    public const int CoarseStride = 8;

    private const int Opset = 17;
    private const float Temperature = 0.05f;
    private const int BorderCells = 2;
    private const int WindowSide = 8;
    private const float WindowSpacing = 1.75f;
    private const float MaxStep = 3f;
    private const float MaxRefinement = 6f;
    private const float MinCorrelation = 0.9f;

    /// <summary>The manifest the embedded model is described by; its graph's <paramref name="file"/> is empty when it is built in memory.</summary>
    public static ModelManifest Manifest(int width, int height, string file = "") => new()
    {
        Name = Name,
        Graphs = [Contract(width, height, file)],
        Input = new ModelInputManifest { Width = width, Height = height, Channels = 1, ElementType = InputElementType.Float32 },
        Outputs = new ModelOutputManifest { Layout = OutputLayout.PairSlots },
        DefaultThreshold = 0.2f,
        CoarseStride = CoarseStride,
    };

    /// <summary>The graph's tensors: a dense whole-pair graph over float pixels.</summary>
    public static GraphSpec Contract(int width, int height, string file = "") =>
        ModelContracts.DensePair(file, width, height, 1, TensorType.Float32, width / CoarseStride * (height / CoarseStride));

    /// <summary>Serialised ONNX model for inputs of <paramref name="height"/>×<paramref name="width"/> (multiples of 32).</summary>
    public static byte[] Build(int width, int height)
    {
        if (width <= 0 || height <= 0 || width % 32 != 0 || height % 32 != 0)
        {
            throw new ArgumentException($"Embedded model input must be positive multiples of 32; got {width}×{height}.");
        }

        var g = new OnnxGraphBuilder(Name);
        var cellsX = width / CoarseStride;
        var cellsY = height / CoarseStride;
        var n = cellsX * cellsY;

        var contract = Contract(width, height);
        var pixels = g.Input(contract.Inputs[0].Name, DataType.Float, "batch", 2L, 1L, (long)height, (long)width);
        var batch = g.Node("Shape", [pixels], OnnxAttribute.Int("start", 0), OnnxAttribute.Int("end", 1));
        var images = g.Node("Reshape", [pixels, g.Constant([-1L, 1, height, width], 4)]);

        var fine = GaussianBlur(g, images, sigma: 1.0f);
        var coarse = GaussianBlur(g, images, sigma: 2.5f);

        // Descriptors: 8×8 samples, 8 px apart, of 4×4 box means of the coarse blur: a 64-pixel window per cell,
        // wide enough to be distinctive and smooth enough to tolerate the half-cell misalignment of a coarse match.
        var pooled = g.Node("AveragePool", [coarse], OnnxAttribute.Ints("kernel_shape", 4, 4), OnnxAttribute.Ints("strides", 4, 4));
        var descriptors = g.Node("Conv", [pooled, g.Constant(OneHotKernels(8), 64, 1, 8, 8)],
            OnnxAttribute.Ints("strides", 2, 2), OnnxAttribute.Ints("dilations", 2, 2), OnnxAttribute.Ints("pads", 7, 7, 7, 7));
        descriptors = g.Node("Reshape", [descriptors, g.Constant([-1L, 64, n], 3)]);
        var centred = g.Node("Sub", [descriptors, g.Node("ReduceMean", [descriptors], OnnxAttribute.Ints("axes", 1))]);
        var norm = g.Node("Sqrt", [g.Node("ReduceSumSquare", [centred], OnnxAttribute.Ints("axes", 1))]);
        // A contrast floor: flat or nearly flat cells get short descriptors, hence low similarity, hence low scores.
        var unit = g.Node("Div", [centred, g.Node("Max", [norm, g.Scalar(0.02f)])]);
        var pairs = g.Node("Reshape", [unit, g.Constant([-1L, 2, 64, n], 4)]);
        var d0 = g.Node("Gather", [pairs, g.Scalar(0L)], OnnxAttribute.Int("axis", 1));
        var d1 = g.Node("Gather", [pairs, g.Scalar(1L)], OnnxAttribute.Int("axis", 1));

        var similarity = g.Node("MatMul", [g.Node("Transpose", [d0], OnnxAttribute.Ints("perm", 0, 2, 1)), d1]);
        similarity = g.Node("Mul", [similarity, g.Scalar(1f / Temperature)]);
        var confidence = g.Node("Mul", [
            g.Node("Softmax", [similarity], OnnxAttribute.Int("axis", 2)),
            g.Node("Softmax", [similarity], OnnxAttribute.Int("axis", 1)),
        ]);

        // A match is an image-1 neighbourhood: the true point often lies between two cells, which then share the
        // softmax mass. Score = confidence summed over the 3×3 cells around the best one; mutual = the best image-0
        // cell of that image-1 cell is this cell or a neighbour. Refinement then finds the sub-cell position.
        var best1 = g.Node("ArgMax", [confidence], OnnxAttribute.Int("axis", 2), OnnxAttribute.Int("keepdims", 0));
        var best0 = g.Node("ArgMax", [confidence], OnnxAttribute.Int("axis", 1), OnnxAttribute.Int("keepdims", 0));
        var width1 = g.Scalar((long)cellsX);
        var bestX = g.Node("Mod", [best1, width1]);
        var bestY = g.Node("Div", [best1, width1]);
        var neighbours = new string[9];
        for (var i = 0; i < 9; i++)
        {
            var nx = g.Node("Clip", [g.Node("Add", [bestX, g.Scalar((long)(i % 3 - 1))]), g.Scalar(0L), g.Scalar(cellsX - 1L)]);
            var ny = g.Node("Clip", [g.Node("Add", [bestY, g.Scalar((long)(i / 3 - 1))]), g.Scalar(0L), g.Scalar(cellsY - 1L)]);
            neighbours[i] = Unsqueeze(g, g.Node("Add", [g.Node("Mul", [ny, width1]), nx]), 2);
        }

        var around = g.Node("GatherElements", [confidence, g.Node("Concat", neighbours, OnnxAttribute.Int("axis", 2))], OnnxAttribute.Int("axis", 2));
        var score = g.Node("Min", [g.Node("ReduceSum", [around, g.Constant([2L], 1)], OnnxAttribute.Int("keepdims", 0)), g.Scalar(1f)]);
        var cellIndex = g.Constant(Range(n), 1, n);
        var back = g.Node("GatherElements", [best0, best1], OnnxAttribute.Int("axis", 1));
        var one = g.Scalar(1L);
        var nearX = g.Node("LessOrEqual", [g.Node("Abs", [g.Node("Sub", [g.Node("Mod", [back, width1]), g.Node("Mod", [cellIndex, width1])])]), one]);
        var nearY = g.Node("LessOrEqual", [g.Node("Abs", [g.Node("Sub", [g.Node("Div", [back, width1]), g.Node("Div", [cellIndex, width1])])]), one]);
        var mutual = g.Node("And", [nearX, nearY]);
        var inner = InnerCells(cellsX, cellsY);
        var valid = g.Node("And", [mutual, g.Constant(inner, 1, n)]);
        valid = g.Node("And", [valid, g.Node("Gather", [g.Constant(inner, n), best1], OnnxAttribute.Int("axis", 0))]);

        // Sub-cell refinement of the image-1 point, starting from the matched cell's centre.
        var centres = CellCentres(cellsX, cellsY);
        var start = g.Node("Gather", [g.Constant(centres, n, 2), best1], OnnxAttribute.Int("axis", 0));
        var refiner = new Refiner(g, width, height, n, batch);
        var point = start;
        var fineLevel = refiner.Level(fine);
        foreach (var (level, iterations) in new[] { (refiner.Level(coarse), 3), (fineLevel, 3) })
        {
            for (var i = 0; i < iterations; i++)
            {
                point = refiner.Step(level, point);
            }
        }

        // Verification: the refined image-1 window must look like the image-0 window (normalised cross-correlation).
        valid = g.Node("And", [valid, g.Node("Greater", [refiner.Correlation(fineLevel, point), g.Scalar(MinCorrelation)])]);

        var moved = g.Node("ReduceMax", [g.Node("Abs", [g.Node("Sub", [point, start])])], OnnxAttribute.Ints("axes", 2), OnnxAttribute.Int("keepdims", 0));
        valid = g.Node("And", [valid, g.Node("Less", [moved, g.Scalar(MaxRefinement)])]);
        point = g.Node("Min", [g.Node("Max", [point, g.Constant([0f, 0f], 1, 1, 2)]), g.Constant([width - 1f, height - 1f], 1, 1, 2)]);

        var toUnit = g.Constant([1f / width, 1f / height], 1, 1, 2);
        var keypoints0 = g.Node("Expand", [g.Node("Mul", [g.Constant(centres, 1, n, 2), toUnit]),
            g.Node("Concat", [batch, g.Constant([n, 2L], 2)], OnnxAttribute.Int("axis", 0))]);
        var keypoints1 = g.Node("Mul", [point, toUnit]);
        var keypoints = g.Node("Concat", [Unsqueeze(g, keypoints0, 1), Unsqueeze(g, keypoints1, 1)], OnnxAttribute.Int("axis", 1));

        var none = g.Scalar(-1L);
        var matches0 = g.Node("Where", [valid, best1, none]);
        var matches1 = g.Node("Where", [valid, g.Node("Expand", [cellIndex, g.Node("Shape", [best1])]), none]);
        var matches = g.Node("Concat", [Unsqueeze(g, matches0, 1), Unsqueeze(g, matches1, 1)], OnnxAttribute.Int("axis", 1));
        var scores0 = Unsqueeze(g, g.Node("Where", [valid, score, g.Scalar(0f)]), 1);
        var scores = g.Node("Concat", [scores0, scores0], OnnxAttribute.Int("axis", 1));

        g.Output(matches, contract.Outputs[0].Name, DataType.Int64, "batch", 2L, (long)n);
        g.Output(scores, contract.Outputs[1].Name, DataType.Float, "batch", 2L, (long)n);
        g.Output(keypoints, contract.Outputs[2].Name, DataType.Float, "batch", 2L, (long)n, 2L);
        return g.Build(Opset, "videomatch").ToByteArray();
    }

    private static string Unsqueeze(OnnxGraphBuilder g, string value, long axis) =>
        g.Node("Unsqueeze", [value, g.Constant([axis], 1)]);

    private static string GaussianBlur(OnnxGraphBuilder g, string images, float sigma)
    {
        var radius = (int)MathF.Ceiling(2.5f * sigma);
        var taps = new float[2 * radius + 1];
        var sum = 0f;
        for (var i = -radius; i <= radius; i++)
        {
            taps[i + radius] = MathF.Exp(-0.5f * i * i / (sigma * sigma));
            sum += taps[i + radius];
        }

        for (var i = 0; i < taps.Length; i++)
        {
            taps[i] /= sum;
        }

        // Edge-replicating padding keeps image borders from darkening, which would look like structure.
        var padded = g.Node("Pad", [images, g.Constant([0L, 0, radius, radius, 0, 0, radius, radius], 8)], OnnxAttribute.String("mode", "edge"));
        var rows = g.Node("Conv", [padded, g.Constant(taps, 1, 1, 1, taps.Length)]);
        return g.Node("Conv", [rows, g.Constant(taps, 1, 1, taps.Length, 1)]);
    }

    private static float[] OneHotKernels(int side)
    {
        var kernels = new float[side * side * side * side];
        for (var k = 0; k < side * side; k++)
        {
            kernels[k * side * side + k] = 1f;
        }

        return kernels;
    }

    private static long[] Range(int n)
    {
        var values = new long[n];
        for (var i = 0; i < n; i++)
        {
            values[i] = i;
        }

        return values;
    }

    private static bool[] InnerCells(int cellsX, int cellsY)
    {
        var inner = new bool[cellsX * cellsY];
        for (var y = BorderCells; y < cellsY - BorderCells; y++)
        {
            for (var x = BorderCells; x < cellsX - BorderCells; x++)
            {
                inner[y * cellsX + x] = true;
            }
        }

        return inner;
    }

    /// <summary>Cell centres in pixel-index coordinates (the centre of pixel (0,0) is (0,0)).</summary>
    private static float[] CellCentres(int cellsX, int cellsY)
    {
        var centres = new float[cellsX * cellsY * 2];
        const float half = (CoarseStride - 1) / 2f;
        for (var y = 0; y < cellsY; y++)
        {
            for (var x = 0; x < cellsX; x++)
            {
                centres[2 * (y * cellsX + x)] = x * CoarseStride + half;
                centres[2 * (y * cellsX + x) + 1] = y * CoarseStride + half;
            }
        }

        return centres;
    }

    /// <summary>Graph pieces for Lucas–Kanade refinement on windows sampled around each slot's point.</summary>
    private sealed class Refiner
    {
        private readonly OnnxGraphBuilder _g;
        private readonly string _batch;
        private readonly string _offsets;
        private readonly string _weights;
        private readonly string _weightSum;
        private readonly string _gridScale;
        private readonly string _gridBias;
        private readonly string _templateGrid;
        private readonly string _maxStep;

        public Refiner(OnnxGraphBuilder g, int width, int height, int n, string batch)
        {
            _g = g;
            _batch = batch;
            var k = WindowSide * WindowSide;
            var offsets = new float[k * 2];
            var weights = new float[k];
            var sigma = WindowSide * WindowSpacing / 3f;
            var sum = 0f;
            for (var i = 0; i < k; i++)
            {
                var ox = (i % WindowSide - (WindowSide - 1) / 2f) * WindowSpacing;
                var oy = (i / WindowSide - (WindowSide - 1) / 2f) * WindowSpacing;
                offsets[2 * i] = ox;
                offsets[2 * i + 1] = oy;
                weights[i] = MathF.Exp(-0.5f * (ox * ox + oy * oy) / (sigma * sigma));
                sum += weights[i];
            }

            _offsets = g.Constant(offsets, 1, 1, k, 2);
            _weights = g.Constant(weights, 1, 1, 1, k);
            _weightSum = g.Scalar(sum);
            // GridSample with align_corners=0 maps pixel-index coordinate x to (2x + 1) / W - 1.
            _gridScale = g.Constant([2f / width, 2f / height], 1, 1, 1, 2);
            _gridBias = g.Constant([1f / width - 1f, 1f / height - 1f], 1, 1, 1, 2);
            _maxStep = g.Scalar(MaxStep);

            var centres = CellCentres(width / CoarseStride, height / CoarseStride);
            var templateGrid = new float[n * k * 2];
            for (var c = 0; c < n; c++)
            {
                for (var i = 0; i < k; i++)
                {
                    var at = (c * k + i) * 2;
                    templateGrid[at] = (centres[2 * c] + offsets[2 * i]) * 2f / width + 1f / width - 1f;
                    templateGrid[at + 1] = (centres[2 * c + 1] + offsets[2 * i + 1]) * 2f / height + 1f / height - 1f;
                }
            }

            _templateGrid = g.Node("Expand", [g.Constant(templateGrid, 1, n, k, 2),
                g.Node("Concat", [batch, g.Constant([n, k, 2L], 3)], OnnxAttribute.Int("axis", 0))]);
        }

        /// <summary>Per blur level: the zero-mean image-0 template of every slot and image 1 with its gradients.</summary>
        public (string Template, string Target) Level(string blurred)
        {
            var g = _g;
            var pairs = g.Node("Reshape", [blurred, g.Constant([-1L, 2, 0, 0], 4)]);
            var image0 = g.Node("Gather", [pairs, g.Constant([0L], 1)], OnnxAttribute.Int("axis", 1));
            var image1 = g.Node("Gather", [pairs, g.Constant([1L], 1)], OnnxAttribute.Int("axis", 1));
            var gradX = g.Node("Conv", [image1, g.Constant([-0.5f, 0f, 0.5f], 1, 1, 1, 3)], OnnxAttribute.Ints("pads", 0, 1, 0, 1));
            var gradY = g.Node("Conv", [image1, g.Constant([-0.5f, 0f, 0.5f], 1, 1, 3, 1)], OnnxAttribute.Ints("pads", 1, 0, 1, 0));
            var target = g.Node("Concat", [image1, gradX, gradY], OnnxAttribute.Int("axis", 1));
            var template = Sample(image0, _templateGrid);
            return (ZeroMean(template), target);
        }

        /// <summary>One Gauss–Newton step: solves the weighted 2×2 normal equations for each slot's shift.</summary>
        public string Step((string Template, string Target) level, string point)
        {
            var g = _g;
            var sampled = Sample(level.Target, Grid(point));
            var parts = g.Nodes("Split", [sampled], 3, OnnxAttribute.Int("axis", 1));
            var error = g.Node("Sub", [level.Template, ZeroMean(parts[0])]);
            var gx = parts[1];
            var gy = parts[2];
            var wgx = g.Node("Mul", [gx, _weights]);
            var wgy = g.Node("Mul", [gy, _weights]);
            var hxx = Sum(g.Node("Mul", [wgx, gx]));
            var hxy = Sum(g.Node("Mul", [wgx, gy]));
            var hyy = Sum(g.Node("Mul", [wgy, gy]));
            var bx = Sum(g.Node("Mul", [wgx, error]));
            var by = Sum(g.Node("Mul", [wgy, error]));
            var det = g.Node("Sub", [g.Node("Mul", [hxx, hyy]), g.Node("Mul", [hxy, hxy])]);
            var solvable = g.Node("Greater", [det, g.Scalar(1e-9f)]);
            var safeDet = g.Node("Where", [solvable, det, g.Scalar(1f)]);
            var dx = g.Node("Div", [g.Node("Sub", [g.Node("Mul", [hyy, bx]), g.Node("Mul", [hxy, by])]), safeDet]);
            var dy = g.Node("Div", [g.Node("Sub", [g.Node("Mul", [hxx, by]), g.Node("Mul", [hxy, bx])]), safeDet]);
            var step = g.Node("Concat", [dx, dy], OnnxAttribute.Int("axis", 1));
            step = g.Node("Where", [solvable, step, g.Scalar(0f)]);
            step = g.Node("Clip", [step, g.Node("Neg", [_maxStep]), _maxStep]);
            step = g.Node("Transpose", [step], OnnxAttribute.Ints("perm", 0, 2, 1));
            return g.Node("Add", [point, step]);
        }

        /// <summary>Weighted normalised cross-correlation of each slot's windows at <paramref name="point"/>, (B, N).</summary>
        public string Correlation((string Template, string Target) level, string point)
        {
            var g = _g;
            var sampled = Sample(level.Target, Grid(point));
            var window = ZeroMean(g.Nodes("Split", [sampled], 3, OnnxAttribute.Int("axis", 1))[0]);
            var cross = Sum(g.Node("Mul", [g.Node("Mul", [level.Template, window]), _weights]));
            var energy0 = Sum(g.Node("Mul", [g.Node("Mul", [level.Template, level.Template]), _weights]));
            var energy1 = Sum(g.Node("Mul", [g.Node("Mul", [window, window]), _weights]));
            var denominator = g.Node("Sqrt", [g.Node("Add", [g.Node("Mul", [energy0, energy1]), g.Scalar(1e-12f)])]);
            return g.Node("Squeeze", [g.Node("Div", [cross, denominator]), g.Constant([1L], 1)]);
        }

        private string Grid(string point)
        {
            var grid = _g.Node("Add", [_g.Node("Unsqueeze", [point, _g.Constant([2L], 1)]), _offsets]);
            return _g.Node("Add", [_g.Node("Mul", [grid, _gridScale]), _gridBias]);
        }

        private string Sample(string image, string grid) => _g.Node("GridSample", [image, grid],
            OnnxAttribute.String("mode", "bilinear"), OnnxAttribute.String("padding_mode", "border"), OnnxAttribute.Int("align_corners", 0));

        private string ZeroMean(string values)
        {
            var mean = _g.Node("Div", [_g.Node("ReduceSum", [_g.Node("Mul", [values, _weights]), _g.Constant([3L], 1)]), _weightSum]);
            return _g.Node("Sub", [values, mean]);
        }

        // (B, 1, N, K) → (B, 1, N): the weighted window sum.
        private string Sum(string values) =>
            _g.Node("ReduceSum", [values, _g.Constant([3L], 1)], OnnxAttribute.Int("keepdims", 0));
    }
}
