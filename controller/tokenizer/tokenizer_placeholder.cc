// Placeholder translation unit until the tokenizer sources land; removed with them.
namespace loom {}
